"""`dne run` under real `mpirun -n N --oversubscribe` processes.

A 3-experiment sweep on 1, 2 and 3 ranks must produce each experiment exactly once, with
bit-identical noise and scores whatever the rank count (the determinism contract).
"""
import h5py
import numpy as np
import pytest

from dne_testing import MANIFEST_CONFIG, MANIFEST_SMALL, REPO, SMALL, run_dne

SWEEP = [*SMALL, "--set", "dne.method=[\"none\", \"whitebox\"]", "--set", "dne.lambda=[0.01, 1.0]",
         "--set", "sweep.seeds=1", "--set", "run.threads=1"]
QUICKSTART = REPO / "experiments" / "quickstart.toml"


def results(out):
    files = sorted((out / "experiments").glob("*.h5"))
    data = {}
    for path in files:
        with h5py.File(path, "r") as f:
            data[path.stem] = (f["noise"][:], f["test/score"][:], int(f["provenance"].attrs["world_size"]))
    return data


@pytest.fixture(scope="module")
def one_rank(dne_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks1")
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", out, *SWEEP)
    assert proc.returncode == 0, proc.stderr
    return results(out)


@pytest.mark.parametrize("ranks", [2, 3])
def test_sweep_same_bits_for_any_rank_count(dne_bin, one_rank, tmp_path, ranks):
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path, *SWEEP, mpi_ranks=ranks)
    assert proc.returncode == 0, proc.stderr
    assert "3/3 complete (0 already complete, 3 run now)" in proc.stdout
    many = results(tmp_path)
    assert sorted(many) == sorted(one_rank)
    for key, (noise, score, world) in many.items():
        assert world == ranks
        assert np.array_equal(noise, one_rank[key][0]), key
        assert np.array_equal(score, one_rank[key][1]), key


def test_config_error_under_mpi_is_one_line_and_every_rank_exits(dne_bin, tmp_path):
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path / "o",
                   "--set", "data.bias=7", mpi_ranks=2, timeout=120)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.startswith("dne:")]
    assert lines == ["dne: config error: --set data.bias=7: data.bias: 7.0 is out of range [0.0, 1.0]"], proc.stderr


def test_data_error_on_all_ranks_exits_without_hanging(dne_bin, tmp_path):
    proc = run_dne(dne_bin, "run", "--config", MANIFEST_CONFIG, "--out", tmp_path / "o", *MANIFEST_SMALL,
                   "--set", f"data.manifest=\"{tmp_path / 'none.csv'}\"", mpi_ranks=2, timeout=120)
    # Checked once on rank 0 before the sweep: one line, exit 2 on every rank, no experiment file.
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("dne:")]
    assert len(lines) == 1 and lines[0].startswith("dne: data error") and "none.csv" in lines[0], proc.stderr
    assert not list((tmp_path / "o" / "experiments").glob("*.h5"))


ZO = [*SMALL, "--set", "sweep.seeds=2", "--set", "run.threads=1", "--set", "dne.lambda=0.01",
      "--set", "zo.candidates=3", "--set", "gezo.local_epochs=2"]


def only_file(out):
    (path,) = sorted((out / "experiments").glob("*.h5"))
    return h5py.File(path, "r")


def zo_run(dne_bin, out, ranks, *extra):
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", out, *ZO, *extra,
                   "--set", f"sweep.ranks_per_experiment={ranks}", mpi_ranks=ranks)
    assert proc.returncode == 0, proc.stderr
    return only_file(out)


@pytest.fixture(scope="module")
def gezo_one_rank(dne_bin, tmp_path_factory):
    return zo_run(dne_bin, tmp_path_factory.mktemp("gezo1"), 1, "--set", "dne.method=gezo")


@pytest.mark.parametrize("ranks", [2, 3])
def test_gezo_sharded_over_ranks_is_bitwise_identical(dne_bin, gezo_one_rank, tmp_path, ranks):
    # 2C + 1 = 7 evaluations per first local iteration: uneven over 2 and 3 ranks.
    f = zo_run(dne_bin, tmp_path, ranks, "--set", "dne.method=gezo")
    assert f["provenance"].attrs["group_size"] == ranks
    assert f["provenance"].attrs["communicator"] == "mpi"
    assert np.array_equal(f["noise"][:], gezo_one_rank["noise"][:])
    for name in gezo_one_rank["trace"]:
        if name in ("wall_s", "bytes"):
            continue
        assert np.array_equal(f["trace"][name][:], gezo_one_rank["trace"][name][:]), name
    assert f["provenance"].attrs["queries"] == gezo_one_rank["provenance"].attrs["queries"]
    assert np.array_equal(f["test/score"][:], gezo_one_rank["test/score"][:])


NES = ["--set", "dne.method=nes", "--set", "dne.noise_basis=dct", "--set", "dne.noise_dim=4",
       "--set", "zo.candidates=4", "--set", "data.val_fraction=0.2", "--set", "dne.eval_every=800"]


@pytest.fixture(scope="module")
def nes_one_rank(dne_bin, tmp_path_factory):
    return zo_run(dne_bin, tmp_path_factory.mktemp("nes1"), 1, *NES)


@pytest.mark.parametrize("ranks", [2, 3])
def test_nes_in_a_basis_is_bitwise_identical_over_ranks(dne_bin, nes_one_rank, tmp_path, ranks):
    # 2q = 8 evaluations per step: uneven over 3 ranks; the progress measurements embed over the group.
    f = zo_run(dne_bin, tmp_path, ranks, *NES)
    assert f["provenance"].attrs["group_size"] == ranks
    assert np.array_equal(f["noise"][:], nes_one_rank["noise"][:])
    assert np.array_equal(f["control/noise"][:], nes_one_rank["control/noise"][:])
    for group in ("trace", "progress"):
        for name in nes_one_rank[group]:
            if name in ("wall_s", "bytes"):
                continue
            assert np.array_equal(f[group][name][:], nes_one_rank[group][name][:]), (group, name)
    # Reported at 0, at the first step boundary past every 800 queries, and at the end.
    queries = list(f["progress/queries"][:])
    assert queries[0] == 0 and queries[-1] == f["provenance"].attrs["queries"] and len(queries) >= 3, queries
    assert all(q >= 800 * k for k, q in enumerate(queries[:-1])), queries
    assert np.array_equal(f["test/score"][:], nes_one_rank["test/score"][:])


def test_refit_adversary_is_bitwise_identical_over_ranks_and_counted(dne_bin, gezo_one_rank, tmp_path):
    # 200 training images, batches of 50: the adversary is re-fitted on all 200 before batch 2,
    # embedded in 4 chunks dealt over 1 and 3 ranks.
    refit = ["--set", "dne.method=gezo", "--set", "dne.adversary=refit", "--set", "dne.refit_every=2"]
    one = zo_run(dne_bin, tmp_path / "one", 1, *refit)
    three = zo_run(dne_bin, tmp_path / "three", 3, *refit)
    assert list(one["trace/refit"][:]) == [0, 0, 0, 0, 1, 0, 0, 0]  # 2 local iterations per batch
    assert one["provenance"].attrs["queries"] == gezo_one_rank["provenance"].attrs["queries"] + 200
    assert three["provenance"].attrs["queries"] == one["provenance"].attrs["queries"]
    assert np.array_equal(three["noise"][:], one["noise"][:])
    assert np.array_equal(three["trace/loss"][:], one["trace/loss"][:])
    assert not np.array_equal(one["noise"][:], gezo_one_rank["noise"][:])


def test_dense_mode_agrees_with_seed_mode(dne_bin, tmp_path):
    seed = zo_run(dne_bin, tmp_path / "seed", 2, "--set", "dne.method=rge", "--set", "comm.mode=seed")
    dense = zo_run(dne_bin, tmp_path / "dense", 2, "--set", "dne.method=rge", "--set", "comm.mode=dense")
    np.testing.assert_allclose(dense["noise"][:], seed["noise"][:], rtol=0, atol=1e-5)
    # dense mode moves an (H, W) float32 estimate per step; seed mode only 2q + 1 losses
    assert dense["trace/bytes"][-1] > seed["trace/bytes"][-1]


def test_data_split_runs_and_counts_every_image(dne_bin, tmp_path):
    f = zo_run(dne_bin, tmp_path, 2, "--set", "dne.method=spsa", "--set", "comm.split=data")
    # 200 images / batch 50 = 4 steps x (2q + 1 = 7) evaluations x 50 images
    assert f["provenance"].attrs["queries"] == 4 * 7 * 50


def test_leftover_rank_and_groups_run_every_experiment_once(dne_bin, tmp_path):
    # 3 ranks in groups of 2: one group, one idle rank; 3 experiments.
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path, *SWEEP,
                   "--set", "sweep.ranks_per_experiment=2", mpi_ranks=3)
    assert proc.returncode == 0, proc.stderr
    assert "3/3 complete (0 already complete, 3 run now)" in proc.stdout and "1 leftover rank(s) idle" in proc.stdout
    assert len(list((tmp_path / "experiments").glob("*.h5"))) == 3


def test_budget_stops_cleanly_and_is_exact(dne_bin, tmp_path):
    # GeZO, C = 3, 2 local iterations, batch 50: 350 + 300 images per batch. Budget 1000:
    # 650 after batch 1, 1000 after batch 2's first iteration (fits exactly), then 300 more would not.
    f = zo_run(dne_bin, tmp_path, 2, "--set", "dne.method=gezo", "--set", "zo.budget=1000")
    assert f.attrs["status"] == "budget: stopped after 1000 of 1000 images (the next iteration needs 300)"
    assert f["provenance"].attrs["queries"] == 1000
    assert f["trace/queries"][-1] == 1000
