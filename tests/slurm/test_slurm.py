"""launch/slurm.sbatch under a real Slurm (issue 28).

A one-node Slurm cluster (Debian's munged, slurmctld and slurmd, started by
scripts/slurm-cluster.sh in a private folder) runs the template exactly as a user submits it,
with the node and task counts on the sbatch command line. Checked with h5py and Slurm's own
records (`scontrol show job`, the job log):
- a finished job gives the same bits as `mpirun -n 2` on the same config;
- a job whose --time limit falls in the middle of the sweep is stopped by Slurm (TIMEOUT, every
  rank exits 143 through dne's SIGTERM path: unfinished experiments pending in index.h5, no
  temporary file), and the next job of a launch/slurm-chain.sh chain completes exactly the
  remaining experiments, with the same bits as an undisturbed run; the chain's third job is
  removed once the sweep is complete;
- `scancel --signal=TERM` on a running job stops it the same way, and resubmitting completes it.

The sweep's length in wall time comes from api.latency_ms (GeZO's API calls sleep 100 ms; not in
the experiment id, so an undisturbed run without it is the reference), not from computation: the
time limit lands mid-sweep on a fast or a slow machine alike, and the cores stay free.
Root only (slurmd); skipped with the reason otherwise."""
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from dne_testing import REPO, SMALL, run_dne
from sweep_checks import assert_stopped_cleanly, index_state, results

CLUSTER = REPO / "scripts" / "slurm-cluster.sh"
SBATCH = REPO / "launch" / "slurm.sbatch"
CHAIN = REPO / "launch" / "slurm-chain.sh"
# 2 tasks on 1 node, one CPU each: given on the sbatch command line, over the template's 2 x 8 x 4.
SHAPE = ["-N", "1", "-n", "2", "--ntasks-per-node=2", "--cpus-per-task=1"]
SEEDS = 16          # the long sweep: 8 experiments per rank, about 15 s each with the latency
SHORT_SEEDS = 6     # the short one (the same experiments as the first 6 of the long one)
SLOW = ["--set", "api.latency_ms=100"]


def free_port_pair():
    """A port p with p and p + 1 free (slurmctld, slurmd)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, dne_bin):
    """The running cluster: the environment its commands and jobs use (SLURM_CONF, DNE_BIN)."""
    if os.geteuid() != 0:
        pytest.skip("a private Slurm cluster needs root: slurmd starts job steps as the submitting user")
    folder = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, DNE_SLURM_PORT=str(free_port_pair()), DNE_REPO=str(REPO), DNE_BIN=str(dne_bin))
    started = subprocess.run(["bash", CLUSTER, "start", folder], env=env, capture_output=True, text=True, timeout=900)
    if started.returncode == 77:
        pytest.skip(started.stdout.strip())
    assert started.returncode == 0, started.stdout + started.stderr
    env["SLURM_CONF"] = str(folder / "slurm.conf")
    yield env
    subprocess.run(["bash", CLUSTER, "stop", folder], env=env, capture_output=True, timeout=120)


def config(path, out, seeds):
    path.write_text(f'[dne]\nmethod = "gezo"\n[sweep]\nseeds = {list(range(seeds))}\n[output]\ndir = "{out}"\n')
    return path


def sbatch(env, log_dir, *args):
    """Submit; returns the job id."""
    proc = subprocess.run(["sbatch", "--parsable", "-o", f"{log_dir}/job-%j.log", *SHAPE, *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=60, cwd=log_dir)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def job(env, job_id):
    """scontrol's fields of a job (JobState, ExitCode, Reason, ...)."""
    proc = subprocess.run(["scontrol", "-o", "show", "job", job_id], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return dict(re.findall(r"(\w+)=(\S*)", proc.stdout))


def wait_until(env, job_id, states, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        fields = job(env, job_id)
        if fields["JobState"] in states:
            return fields
        time.sleep(1)
    subprocess.run(["scancel", job_id], env=env, timeout=60)
    raise AssertionError(f"job {job_id} still {fields['JobState']} after {timeout} s")


def tasks_exited_143(log):
    """The task ids srun reports as exited with 143 ("tasks 0-1: ..." or one line per task)."""
    found = set()
    for first, last in re.findall(r"tasks? (\d+)(?:-(\d+))?: Exited with exit code 143", log):
        found.update(range(int(first), int(last or first) + 1))
    return found


FINISHED = {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY"}


@pytest.fixture(scope="module")
def undisturbed(dne_bin, tmp_path_factory):
    """The long sweep under mpirun -n 2, without the latency: what every Slurm run must equal."""
    tmp = tmp_path_factory.mktemp("undisturbed")
    proc = run_dne(dne_bin, "run", "--config", config(tmp / "run.toml", tmp / "out", SEEDS), *SMALL, mpi_ranks=2)
    assert proc.returncode == 0, proc.stderr
    found = results(tmp / "out")
    assert len(found) == SEEDS
    return found


def assert_same_bits(out, undisturbed, count):
    got = results(out)
    assert len(got) == count and got.keys() <= undisturbed.keys()
    for rid, (metrics, noise) in got.items():
        assert metrics == undisturbed[rid][0], rid
        np.testing.assert_array_equal(noise, undisturbed[rid][1], err_msg=rid)


def test_a_job_gives_the_bits_of_mpirun(cluster, undisturbed, tmp_path):
    out = tmp_path / "out"
    job_id = sbatch(cluster, tmp_path, SBATCH, config(tmp_path / "run.toml", out, SHORT_SEEDS), *SMALL)
    fields = wait_until(cluster, job_id, FINISHED)
    log = (tmp_path / f"job-{job_id}.log").read_text()
    assert fields["JobState"] == "COMPLETED" and fields["ExitCode"] == "0:0", log[-2000:]
    assert f"dne-sweep: job {job_id}: 2 ranks on 1 node(s), 1 thread(s) per rank" in log
    assert "# dne run: 6 experiment(s), 2 rank(s), 1 Torch thread(s) per rank" in log
    attrs, rows = index_state(out)
    assert attrs["finished"] == 1 and {status for _, status, _ in rows} == {"complete"}
    assert_same_bits(out, undisturbed, SHORT_SEEDS)


def test_the_time_limit_stops_the_job_and_the_chain_completes_it(cluster, undisturbed, tmp_path):
    out = tmp_path / "out"
    cfg = config(tmp_path / "run.toml", out, SEEDS)
    # Three jobs of one minute each, held, so that each one's outcome can be read before the next.
    chain = subprocess.run(["bash", CHAIN, "3", *SHAPE, "--time=1", "--hold", "-o", f"{tmp_path}/job-%j.log", "--",
                            cfg, *SMALL, *SLOW], env=cluster, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert chain.returncode == 0, chain.stderr
    first, second, third = chain.stdout.split()
    assert job(cluster, second)["Dependency"] == f"afternotok:{first}(unfulfilled)"

    subprocess.run(["scontrol", "release", first], env=cluster, check=True, timeout=60)
    fields = wait_until(cluster, first, FINISHED, timeout=300)
    log = (tmp_path / f"job-{first}.log").read_text()
    assert fields["JobState"] == "TIMEOUT", log[-2000:]
    assert "CANCELLED AT" in log and "DUE TO TIME LIMIT" in log, log[-2000:]
    assert tasks_exited_143(log) == {0, 1}, log[-2000:]
    assert sum(line.startswith("dne: stopped by SIGTERM: ") for line in log.splitlines()) == 1, log[-2000:]
    complete_before = assert_stopped_cleanly(out, "SIGTERM")

    # The resuming job has the remaining half of the sweep: give it room (the chain's one-minute
    # limit would race the last experiment; a CI run lost that race once).
    subprocess.run(["scontrol", "update", f"JobId={second}", "TimeLimit=5"], env=cluster, check=True, timeout=60)
    subprocess.run(["scontrol", "release", second], env=cluster, check=True, timeout=60)
    fields = wait_until(cluster, second, FINISHED, timeout=300)
    log = (tmp_path / f"job-{second}.log").read_text()
    assert fields["JobState"] == "COMPLETED", log[-2000:]
    assert f"{SEEDS}/{SEEDS} complete ({len(complete_before)} already complete, {SEEDS - len(complete_before)} run now)" in log
    attrs, rows = index_state(out)
    assert attrs["finished"] == 1 and attrs["stopped_by"] == "" and {status for _, status, _ in rows} == {"complete"}
    assert_same_bits(out, undisturbed, SEEDS)
    # The sweep is complete: the third job's dependency can never be met, so Slurm removes it.
    fields = wait_until(cluster, third, FINISHED, timeout=120)
    assert fields["JobState"] == "CANCELLED" and not (tmp_path / f"job-{third}.log").exists(), fields


def test_scancel_term_stops_the_job_and_a_resubmission_completes_it(cluster, undisturbed, tmp_path):
    out = tmp_path / "out"
    cfg = config(tmp_path / "run.toml", out, SHORT_SEEDS)
    job_id = sbatch(cluster, tmp_path, SBATCH, cfg, *SMALL, *SLOW)
    log_path = tmp_path / f"job-{job_id}.log"
    deadline = time.time() + 300
    while time.time() < deadline and not (log_path.exists() and "] done in" in log_path.read_text()):
        time.sleep(0.5)
    assert "] done in" in log_path.read_text(), "no experiment finished"
    subprocess.run(["scancel", "--signal=TERM", job_id], env=cluster, check=True, timeout=60)
    fields = wait_until(cluster, job_id, FINISHED, timeout=120)
    log = log_path.read_text()
    # The steps' ranks got SIGTERM and exited 143; the batch script then ends with srun's status.
    assert fields["JobState"] == "FAILED" and fields["ExitCode"] == "143:0", (fields, log[-2000:])
    assert tasks_exited_143(log) == {0, 1}, log[-2000:]
    assert sum(line.startswith("dne: stopped by SIGTERM: ") for line in log.splitlines()) == 1, log[-2000:]
    complete_before = assert_stopped_cleanly(out, "SIGTERM")

    again = sbatch(cluster, tmp_path, SBATCH, cfg, *SMALL)
    fields = wait_until(cluster, again, FINISHED)
    log = (tmp_path / f"job-{again}.log").read_text()
    assert fields["JobState"] == "COMPLETED", log[-2000:]
    assert f"({len(complete_before)} already complete, {SHORT_SEEDS - len(complete_before)} run now)" in log
    assert_same_bits(out, undisturbed, SHORT_SEEDS)
