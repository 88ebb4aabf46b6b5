"""Sweeps under real `mpirun`: index.h5, resume after a killed rank, failure isolation, progress.

The index is read back with h5py (and h5dump) and checked against the experiment files and the
configs they store; nothing is compared with values the sweep code printed about itself.
"""
import hashlib
import re
import subprocess
import tomllib

import h5py
import numpy as np
import pytest

from dne_testing import REPO, SMALL, run_dne

QUICKSTART = REPO / "experiments" / "quickstart.toml"
# 2 methods x 2 lambdas (ERM collapses to one) x 2 seeds = 6 experiments.
SIX = [*SMALL, "--set", "dne.method=[\"none\", \"whitebox\"]", "--set", "dne.lambda=[0.01, 1.0]",
       "--set", "sweep.seeds=[0, 1]", "--set", "run.threads=1"]


def files(out):
    return {p.stem: p for p in sorted((out / "experiments").glob("*.h5"))}


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_index(out):
    with h5py.File(out / "index.h5", "r") as f:
        e = f["experiments"]
        rows = {
            "id": list(e["id"].asstr()[:]), "status": list(e["status"].asstr()[:]),
            "error": list(e["error"].asstr()[:]), "file": list(e["file"].asstr()[:]),
            "method": list(e["method"].asstr()[:]), "seed": e["seed"][:], "resumed": e["resumed"][:],
            "ranks": e["ranks"][:], "wall_s": e["wall_s"][:], "queries": e["queries"][:],
            "axes": {k: (e["axes"][k].asstr()[:] if e["axes"][k].dtype.kind == "O" else e["axes"][k][:])
                     for k in e["axes"]},
            "metrics": {k: e["metrics"][k][:] for k in e["metrics"]},
        }
        return dict(f.attrs), list(f["axes"].asstr()[:]), rows


@pytest.fixture(scope="module")
def six_on_two_ranks(dne_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("six")
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", out, *SIX, mpi_ranks=2)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_index_has_one_row_per_experiment_matching_its_file(six_on_two_ranks):
    out, _ = six_on_two_ranks
    attrs, axes, rows = read_index(out)
    assert attrs["total"] == 6 and attrs["complete"] == 6 and attrs["failed"] == 0 and attrs["finished"] == 1
    assert attrs["world_size"] == 2 and attrs["groups"] == 2 and attrs["ranks_per_experiment"] == 1
    assert axes == ["dne.method", "dne.lambda", "sweep.seeds"]
    assert sorted(rows["id"]) == sorted(files(out))
    for i, id_ in enumerate(rows["id"]):
        path = out / rows["file"][i]
        assert path.stem == id_ and rows["status"][i] == "complete" and rows["resumed"][i] == 0
        with h5py.File(path, "r") as f:
            config = tomllib.loads(f.attrs["config"])
            assert config["dne"]["method"] == rows["method"][i] == rows["axes"]["dne.method"][i]
            assert config["sweep"]["seeds"] == rows["seed"][i] == rows["axes"]["sweep.seeds"][i]
            assert config["dne"]["lambda"] == rows["axes"]["dne.lambda"][i]
            assert f["provenance"].attrs["queries"] == rows["queries"][i]
            assert f["provenance"].attrs["group_size"] == rows["ranks"][i] == 1
            for name, column in rows["metrics"].items():
                if name.startswith("control_"):  # the norm-matched control: /control/metrics, none for ERM
                    stored = f["control/metrics"].attrs[name[len("control_"):]] if "control" in f else np.nan
                else:
                    stored = f["metrics"].attrs[name]
                np.testing.assert_equal(column[i], stored, err_msg=name)
            assert rows["wall_s"][i] > 0
    # The external links resolve to the experiment files, from any working directory.
    with h5py.File(out / "index.h5", "r") as f:
        for id_ in rows["id"]:
            assert f["links"][id_].attrs["id"] == id_
    # Which methods read each key, from dne's key table (ERM has no lambda; only GeZO has R).
    with h5py.File(out / "index.h5", "r") as f:
        assert list(f["key_methods/dne.lambda"].asstr()[:]) == ["whitebox", "gezo", "rge", "spsa", "nes"]
        assert list(f["key_methods/gezo.local_epochs"].asstr()[:]) == ["gezo"]
        assert "none" in list(f["key_methods/sweep.seeds"].asstr()[:])
    dump = subprocess.run(["h5dump", "-H", str(out / "index.h5")], capture_output=True, text=True)
    assert dump.returncode == 0 and 'DATASET "status"' in dump.stdout


def test_progress_lines_one_per_finished_experiment(six_on_two_ranks):
    _, proc = six_on_two_ranks
    lines = [l for l in proc.stdout.splitlines() if l.startswith("[progress]")]
    assert len(lines) == 1 + 6, proc.stdout
    assert re.match(r"\[progress\] 0/6 complete, 0 failed, 0 running, 6 pending \| elapsed \d+s \| ETA \?", lines[0])
    assert re.match(r"\[progress\] 6/6 complete, 0 failed, 0 running, 0 pending \| elapsed \S+ \| ETA \S+$", lines[-1])
    done = [int(re.match(r"\[progress\] (\d+)/6", l).group(1)) for l in lines[1:]]
    assert done == [1, 2, 3, 4, 5, 6]
    assert "dne run: 6/6 complete (0 already complete, 6 run now), 0 failed" in proc.stdout


def test_quiet_prints_only_the_final_line(dne_bin, six_on_two_ranks, tmp_path):
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path, *SIX[:-4], "--quiet",
                   "--set", "dne.method=none", mpi_ranks=2)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == [proc.stdout.strip()] and proc.stdout.startswith("dne run: 1/1 complete")


def test_killed_rank_then_rerun_completes_each_experiment_once(dne_bin, six_on_two_ranks, tmp_path):
    # Rank 1 dies (SIGKILL) when it is about to start its second experiment: mpirun ends the job
    # with experiments in flight. The same command again must finish the sweep, run only what is
    # missing, and leave the files written before the crash byte for byte as they were.
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path, *SIX, "--inject-kill", "1:1",
                   mpi_ranks=2, timeout=300)
    assert proc.returncode != 0
    before = {id_: digest(p) for id_, p in files(tmp_path).items()}
    assert 1 <= len(before) < 6, proc.stdout
    attrs, _, rows = read_index(tmp_path)
    # The index lags the files by at most the experiments in flight (a file is renamed into place
    # before rank 0 books it): every row marked complete has its file.
    assert attrs["finished"] == 0 and attrs["complete"] <= len(before)
    assert {rows["id"][i] for i in range(6) if rows["status"][i] == "complete"} <= set(before)
    assert set(rows["status"]) <= {"complete", "running", "pending"}

    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path, *SIX, mpi_ranks=2, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"6/6 complete ({len(before)} already complete, {6 - len(before)} run now)" in proc.stdout
    after = files(tmp_path)
    assert len(after) == 6
    for id_, sha in before.items():
        assert digest(after[id_]) == sha, id_
    attrs, _, rows = read_index(tmp_path)
    assert attrs["complete"] == 6 and attrs["finished"] == 1
    assert sorted(rows["id"][i] for i in range(6) if rows["resumed"][i]) == sorted(before)
    # Same results as the uninterrupted sweep.
    reference = files(six_on_two_ranks[0])
    for id_, path in after.items():
        with h5py.File(path, "r") as f, h5py.File(reference[id_], "r") as g:
            assert np.array_equal(f["noise"][:], g["noise"][:]) and np.array_equal(f["test/score"][:], g["test/score"][:])


def test_failing_experiment_is_recorded_and_the_others_complete(dne_bin, tmp_path):
    # A file that is not TorchScript passes the preflight (it exists; its bytes enter the id) and
    # fails inside its experiments, when it is loaded: those fail, the ViT ones complete.
    bogus = tmp_path / "encoder.pt"
    bogus.write_text("not torchscript")
    args = ["run", "--config", QUICKSTART, "--out", tmp_path / "out", *SMALL, "--set", "sweep.seeds=0",
            "--set", "dne.method=[\"none\", \"whitebox\"]", "--set", "dne.lambda=0.01",
            "--set", "fm.kind=[\"vit\", \"torchscript\"]", "--set", f"fm.torchscript=\"{bogus}\""]
    proc = run_dne(dne_bin, *args, mpi_ranks=2, timeout=300)
    # A bad model file is bad input: exit code 2, one line on stderr naming the file.
    assert proc.returncode == 2, proc.stderr
    errors = [l for l in proc.stderr.splitlines() if l.startswith("dne:")]
    assert len(errors) == 1 and errors[0].startswith("dne: model error:") and "encoder.pt" in errors[0], proc.stderr
    assert "2 of 4 failed" in errors[0]
    attrs, _, rows = read_index(tmp_path / "out")
    assert attrs["complete"] == 2 and attrs["failed"] == 2 and attrs["finished"] == 1
    for i in range(4):
        if rows["axes"]["fm.kind"][i] == "torchscript":
            assert rows["status"][i] == "failed" and "encoder.pt" in rows["error"][i] and rows["file"][i] == ""
            assert np.isnan(rows["metrics"]["accuracy"][i])
        else:
            assert rows["status"][i] == "complete" and (tmp_path / "out" / rows["file"][i]).is_file()
    assert len(files(tmp_path / "out")) == 2
    # A rerun skips what completed and meets the same failures again.
    proc = run_dne(dne_bin, *args, mpi_ranks=2, timeout=300)
    assert proc.returncode == 2 and "2/4 complete (2 already complete, 0 run now), 2 failed" in proc.stdout


def test_changed_config_never_overwrites_another_experiment(dne_bin, tmp_path):
    base = ["run", "--config", QUICKSTART, "--out", tmp_path, *SMALL, "--set", "dne.method=whitebox",
            "--set", "sweep.seeds=0"]
    assert run_dne(dne_bin, *base, "--set", "dne.lambda=0.01").returncode == 0
    (first,) = files(tmp_path).values()
    sha = digest(first)
    proc = run_dne(dne_bin, *base, "--set", "dne.lambda=0.5")
    assert proc.returncode == 0 and "1/1 complete (0 already complete, 1 run now)" in proc.stdout
    assert len(files(tmp_path)) == 2 and digest(first) == sha
