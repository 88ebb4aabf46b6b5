"""Reliability of `dne run` on its run directory (issue 15): arguments checked before anything is
written, one run per directory (a lock), temporary files of dead writers removed on resume, and a
rerun that asks for more output (output.save_embeddings) delivering it.

Each test reproduces the audited scenario with the real program and checks the directory and the
files afterwards with h5py and the file system (never the program's own account of them)."""
import os
import re
import subprocess
import shutil
import time

import h5py
import pytest

from dne_testing import SMALL, run_dne

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def config(path, out, seeds="[0]", extra=""):
    path.write_text(f'[dne]\nmethod = "none"\n{extra}[sweep]\nseeds = {seeds}\n[output]\ndir = "{out}"\n')
    return path


def one_error_line(proc):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("args,fragment", [
    (["EXTRA.toml"], "unexpected argument 'EXTRA.toml'"),                       # audit row 5
    (["--inject-kill", "garbage"], "--inject-kill 'garbage'"),                  # audit row 6
    (["--set", "sweep.ranks_per_experiment=2"], "exceeds the 1 MPI rank(s)"),   # audit row 6
])
def test_bad_arguments_write_nothing(dne_bin, tmp_path, args, fragment):
    cfg = config(tmp_path / "run.toml", tmp_path / "out")
    proc = run_dne(dne_bin, "run", "--config", cfg, *args)
    assert proc.returncode == 2
    assert fragment in one_error_line(proc)
    assert not (tmp_path / "out").exists()


def test_empty_config_is_refused(dne_bin, tmp_path):  # audit row 14
    (tmp_path / "empty.toml").write_text("# nothing here\n")
    proc = run_dne(dne_bin, "run", "--config", tmp_path / "empty.toml", "--out", tmp_path / "out")
    assert proc.returncode == 2
    assert "sets no key" in one_error_line(proc)
    assert not (tmp_path / "out").exists()


def started_runs(stdout):
    """Experiment ids a run's progress lines say it computed."""
    return re.findall(r"^\[([0-9a-f]{16})\] done in", stdout, re.M)


def test_two_runs_on_one_directory(dne_bin, tmp_path):  # audit row 12
    """A second run on a directory in use exits 2 naming the first (its pid); the first computes
    every experiment once; a third with --wait queues behind it and then finds everything done."""
    out = tmp_path / "out"
    cfg = config(tmp_path / "run.toml", out, seeds="[0, 1, 2, 3, 4, 5]")
    # The first run must outlast the second and the third's start: GeZO whose API calls sleep 30 ms
    # (api.latency_ms is in no id) takes about 5 s per experiment on any machine. An ERM run of
    # the tiny ViT became too quick for that once the FM got 10x faster.
    slow = ["--set", "dne.method=gezo", "--set", "api.latency_ms=30"]
    first = subprocess.Popen([dne_bin, "run", "--config", str(cfg), *map(str, SMALL), *slow], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV)
    lock = out / ".dne-run.lock"
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.exists() and f"pid {first.pid} " in lock.read_text()):
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before the second could start"
    second = run_dne(dne_bin, "run", "--config", cfg, *SMALL, *slow)
    assert first.poll() is None, "the first run ended while the second ran: the test proves nothing"
    assert second.returncode == 2
    line = one_error_line(second)
    assert "in use by another dne run" in line and f"pid {first.pid} " in line and "--wait" in line
    third = subprocess.Popen([dne_bin, "run", "--config", str(cfg), "--wait", *map(str, SMALL), *slow], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV)
    out1, err1 = first.communicate(timeout=600)
    out3, err3 = third.communicate(timeout=600)
    assert first.returncode == 0, err1
    assert third.returncode == 0, err3
    assert "waiting (--wait)" in out3
    assert sorted(started_runs(out1)) == sorted(p.stem for p in (out / "experiments").glob("*.h5"))
    assert len(started_runs(out1)) == 6 and started_runs(out3) == [] and started_runs(second.stdout) == []
    assert "6 already complete" in out3


def test_stale_temporary_files_are_removed(dne_bin, tmp_path):  # audit row 9
    out = tmp_path / "out"
    cfg = config(tmp_path / "run.toml", out)
    proc = run_dne(dne_bin, "run", "--config", cfg, *SMALL)
    assert proc.returncode == 0, proc.stderr
    [done] = (out / "experiments").glob("*.h5")
    stale = [out / "experiments" / f"{done.name}.tmp.deadhost.4242", out / "index.h5.tmp.deadhost.4242",
             out / "experiments" / "0123456789abcdef.h5.tmp.otherhost.7"]
    for path in stale:
        path.write_bytes(b"half-written")
    before = done.read_bytes()
    proc = run_dne(dne_bin, "run", "--config", cfg, *SMALL)
    assert proc.returncode == 0, proc.stderr
    for path in stale:
        assert not path.exists()
        assert f"removed {path}" in proc.stdout
    assert done.read_bytes() == before  # the complete file is untouched (resumed, not redone)
    assert "1 already complete" in proc.stdout


def test_rerun_with_save_embeddings_delivers_them(dne_bin, tmp_path):  # audit row 11
    out = tmp_path / "out"
    cfg = config(tmp_path / "run.toml", out)
    assert run_dne(dne_bin, "run", "--config", cfg, *SMALL).returncode == 0
    [path] = (out / "experiments").glob("*.h5")
    with h5py.File(path, "r") as f:
        assert "embeddings" not in f
    proc = run_dne(dne_bin, "run", "--config", cfg, *SMALL, "--set", "output.save_embeddings=true")
    assert proc.returncode == 0, proc.stderr
    assert started_runs(proc.stdout) == [path.stem]  # redone, same id
    with h5py.File(path, "r") as f:
        assert f["embeddings/train/x"].shape[0] > 0 and f["embeddings/test/x"].shape[0] == 200
    proc = run_dne(dne_bin, "run", "--config", cfg, *SMALL, "--set", "output.save_embeddings=true")
    assert started_runs(proc.stdout) == [] and "1 already complete" in proc.stdout


def test_sizes_that_cannot_fit_in_memory_are_refused_up_front(dne_bin, tmp_path):  # audit row 15
    cfg = config(tmp_path / "run.toml", tmp_path / "out")
    started = time.time()
    proc = run_dne(dne_bin, "run", "--config", cfg, "--set", "data.n_train=1000000", "--set", "data.image_size=512")
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert line.startswith("dne: resource error:") and "GB per rank" in line and "data.n_train = 1000000" in line, line
    assert time.time() - started < 60 and not (tmp_path / "out").exists()


def test_a_manifest_whose_cache_cannot_fit_on_disk_is_refused_before_decoding(dne_bin, phantom_dir, tmp_path):  # row 15
    """A manifest's images are streamed from the run's cache, so its size is a question of disk,
    not of memory: rows at 1024 x 1024 (1 MiB of 8-bit samples each), more of them than the
    output's file system has MiB free. The run refuses them before decoding a single image."""
    lines = (phantom_dir / "manifest.csv").read_text().splitlines()
    rows = lines[1:]
    free_mib = shutil.disk_usage(tmp_path).free // (1 << 20)
    count = int(free_mib * 1.2) + 100
    big = phantom_dir / "big.csv"  # beside the images: the manifest's paths are relative to it
    chosen = [rows[i % len(rows)] for i in range(count)]
    big.write_text("\n".join([lines[0]] + chosen) + "\n")
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[data]\nsource = "manifest"\nmanifest = "{big}"\nimage_size = 1024\nimage_hash = "stat"\n'
                   f'[dne]\nmethod = "none"\n[output]\ndir = "{tmp_path / "out"}"\n')
    proc = run_dne(dne_bin, "run", "--config", cfg, timeout=900)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert line.startswith("dne: resource error: data.manifest ") and "the image cache needs" in line \
        and "GB available" in line, line
    assert not list((tmp_path / "out").rglob("*.h5")), "nothing decoded, no index, no experiment"
