"""`dne pretrain` under SIGTERM and with two writers of one --out (issue 25).

Before: pretraining ended silently on SIGTERM (no line, no 128 + signal exit, only the last
periodic checkpoint kept), and two pretrains on the same --out both ran. Now a signal stops every
rank after the same step with a checkpoint of that step, one line and exit 128 + signal; the same
command resumes from it; a second writer of the same file is refused naming the first.
"""
import os
import signal
import subprocess
import threading
import time

import h5py

TINY = ["--set", "data.n_train=100", "--set", "data.n_test=40", "--set", "fm.kind=vit", "--set", "data.image_size=32",
        "--set", "fm.embed_dim=32", "--set", "fm.depth=2", "--set", "fm.heads=2", "--set", "pretrain.steps=2500",
        "--set", "pretrain.batch_size=16", "--set", "pretrain.warmup_steps=4", "--set", "pretrain.checkpoint_every=100000",
        "--set", "pretrain.decoder_width=32", "--set", "pretrain.decoder_depth=1", "--set", "pretrain.decoder_heads=2",
        "--set", "run.threads=1"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")


class Pretrain:
    """A running `dne pretrain` (optionally under mpirun) whose output lines are collected."""

    def __init__(self, dne_bin, out, ranks=None):
        cmd = [str(dne_bin), "pretrain", "--out", str(out), *TINY]
        if ranks:
            cmd = ["mpirun", "-n", str(ranks), "--oversubscribe", "--bind-to", "none", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                                     start_new_session=True)
        self.stdout, self.stderr = [], []
        for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=lambda s=stream, l=lines: [l.append(x.rstrip("\n")) for x in s], daemon=True).start()

    def wait_for(self, text, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.stdout):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def finish(self, timeout=120):
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


def rank_pids(mpirun_pid):
    """The dne processes below mpirun."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(mpirun_pid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "dne" in line and "pretrain" in line]


def test_sigterm_checkpoints_the_step_and_the_same_command_resumes(dne_bin, tmp_path):
    out = tmp_path / "fm.h5"
    run = Pretrain(dne_bin, out)
    assert run.wait_for("[pretrain] step"), (run.stdout, run.stderr)
    run.proc.send_signal(signal.SIGTERM)
    code = run.finish()
    assert code == 128 + signal.SIGTERM, (code, run.stderr)
    lines = [line for line in run.stderr if line.strip()]
    assert len(lines) == 1 and "SIGTERM received: pretraining stopped after step" in lines[0], run.stderr
    assert not out.exists()
    ckpt = tmp_path / "fm.h5.ckpt"
    with h5py.File(ckpt, "r") as f:
        stopped_at = int(f.attrs["step"]) if "step" in f.attrs else len(f["loss"][()])
    assert 0 < stopped_at < 2500
    assert f"after step {stopped_at} of 2500" in lines[0]
    assert not list(tmp_path.glob("*.tmp*"))
    again = Pretrain(dne_bin, out)
    assert again.finish(timeout=300) == 0, again.stderr
    assert any(f"resumed at {stopped_at}" in line for line in again.stdout), again.stdout


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(dne_bin, tmp_path):
    out = tmp_path / "fm.h5"
    run = Pretrain(dne_bin, out, ranks=2)
    assert run.wait_for("[pretrain] step"), (run.stdout, run.stderr)
    pids = rank_pids(run.proc.pid)
    assert len(pids) == 2, pids
    os.kill(pids[1], signal.SIGTERM)  # rank 1 alone, as a node-local signal would
    start = time.monotonic()
    code = run.finish(timeout=60)
    assert code != 0 and time.monotonic() - start < 30, (code, run.stderr)
    stopped = [line for line in run.stderr if "pretraining stopped after step" in line]
    assert len(stopped) == 1, run.stderr  # rank 0 speaks for both
    assert (tmp_path / "fm.h5.ckpt").exists()


def test_two_pretrains_on_one_out_file(dne_bin, tmp_path):
    out = tmp_path / "fm.h5"
    first = Pretrain(dne_bin, out)
    try:
        assert first.wait_for("# dne pretrain:"), (first.stdout, first.stderr)
        second = subprocess.run([str(dne_bin), "pretrain", "--out", str(out), *TINY], capture_output=True, text=True,
                                env=ENV, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"--out '{out}' is in use by another dne pretrain (pid {first.proc.pid} " in second.stderr, second.stderr
        assert first.proc.poll() is None  # the first one is undisturbed
    finally:
        first.proc.send_signal(signal.SIGTERM)
        first.finish()
