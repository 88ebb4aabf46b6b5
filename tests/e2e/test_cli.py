"""End-to-end tests of `dne run`, `dne phantom` and `dne inspect`, read back with h5py and h5dump.

Expected metric values are recomputed from /test/* by analysis/dne_metrics.py, an independent
numpy implementation; bad inputs must give one line naming the culprit, exit code 2 and no output.
"""
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis.check_metrics import check_file
from dne_testing import MANIFEST_CONFIG, MANIFEST_SMALL, REPO, SMALL, run_dne

QUICKSTART = REPO / "experiments" / "quickstart.toml"
ONE_WHITEBOX = [*SMALL, "--set", "dne.method=whitebox", "--set", "dne.lambda=0.01", "--set", "sweep.seeds=3"]


def only_h5(out):
    return sorted((Path(out) / "experiments").glob("*.h5"))


@pytest.fixture(scope="module")
def small_run(dne_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", out, *ONE_WHITEBOX)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_run_writes_contract_file(small_run):
    out, _ = small_run
    files = only_h5(out)
    assert len(files) == 1
    with h5py.File(files[0], "r") as f:
        for attr in ["id", "config", "status", "seed", "git_commit", "created"]:
            assert attr in f.attrs, attr
        assert f.attrs["id"] == files[0].stem
        assert f.attrs["status"] == "complete"
        assert f.attrs["seed"] == 3
        assert f["noise"].shape == (64, 64) and f["noise"].dtype == np.float32
        n = f["test/score"].shape[0]
        assert n == 200 and f["test/label"].shape == (n,) and f["test/sa"].shape == (n,)
        assert np.all((f["test/score"][:] >= 0) & (f["test/score"][:] <= 1))
        steps = {f["trace"][k].shape[0] for k in f["trace"]}
        assert steps == {4}  # 200 images / batch 50 x 1 epoch
        assert "method = \"whitebox\"" in f.attrs["config"]
        for key in ["frozen_sa_accuracy", "sa_leakage_auc", "equalized_odds", "worst_group_auc"]:
            assert key in f["metrics"].attrs, key
        prov = f["provenance"].attrs
        assert prov["world_size"] == 1 and prov["group_size"] == 1
        for key in ["hostname", "torch_version", "hdf5_version", "mpi_library", "compiler", "fm"]:
            assert str(prov[key]), key
        assert "params=" in prov["fm"]
        for key in ["data_s", "embed_clean_s", "edit_s", "total_s"]:
            assert f["timings"].attrs[key] >= 0, key


def test_metrics_match_independent_recomputation(small_run):
    out, _ = small_run
    (path,) = only_h5(out)
    assert check_file(str(path), 1e-6) == []


def test_h5dump_reads_the_file(small_run):
    out, _ = small_run
    (path,) = only_h5(out)
    proc = subprocess.run(["h5dump", "-H", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'DATASET "noise"' in proc.stdout


def test_inspect_prints_layout(dne_bin, small_run):
    out, _ = small_run
    (path,) = only_h5(out)
    proc = run_dne(dne_bin, "inspect", path)
    assert proc.returncode == 0
    assert "/noise  float32 (64, 64)" in proc.stdout
    assert "@eo_p = " in proc.stdout


def test_rerun_resumes_without_rewriting(dne_bin, small_run):
    out, _ = small_run
    (path,) = only_h5(out)
    before = path.read_bytes()
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", out, *ONE_WHITEBOX)
    assert proc.returncode == 0, proc.stderr
    assert "already complete" in proc.stdout
    assert path.read_bytes() == before


def test_same_config_same_bits(dne_bin, small_run, tmp_path):
    out, _ = small_run
    (first,) = only_h5(out)
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path, *ONE_WHITEBOX)
    assert proc.returncode == 0, proc.stderr
    (second,) = only_h5(tmp_path)
    with h5py.File(first) as a, h5py.File(second) as b:
        assert np.array_equal(a["noise"][:], b["noise"][:])
        assert np.array_equal(a["test/score"][:], b["test/score"][:])


BAD_INPUTS = [
    # (description, extra args or config text, expected fragment of the one error line)
    ("unknown key", "[dne]\nlamda = 1\n", "unknown key 'dne.lamda'"),
    ("wrong type", "[data]\nn_train = \"many\"\n", "data.n_train: expected an integer"),
    ("out of range", "[data]\nbias = 1.5\n", "data.bias: 1.5 is out of range"),
    ("bad choice", "[dne]\nmethod = \"magic\"\n", "\"magic\" is not one of"),
    ("syntax", "[dne\n", "bad.toml:1:"),
    ("nan value", "[dne]\nlambda = nan\n", "dne.lambda: nan is out of range"),
    ("run-wide key as a list", "[run]\nthreads = [1, 2]\n", "run.threads applies to the whole run"),
    ("run-wide key in a grid", "[[grid]]\nsweep.ranks_per_experiment = 1\n[[grid]]\ndne.method = \"none\"\n",
     "sweep.ranks_per_experiment applies to the whole run"),
    ("grid not a table array", "grid = 3\n", "grid must be an array of tables ([[grid]])"),
]


@pytest.mark.parametrize("what,text,fragment", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_config_one_line_exit_2_nothing_written(dne_bin, tmp_path, what, text, fragment):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    proc = run_dne(dne_bin, "run", "--config", cfg, "--out", out)
    assert proc.returncode == 2, (what, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dne: config error: ")
    assert fragment in lines[0], lines[0]
    assert not out.exists()


def test_missing_config(dne_bin, tmp_path):
    proc = run_dne(dne_bin, "run", "--config", tmp_path / "nope.toml", "--out", tmp_path / "o")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"dne: config error: {tmp_path / 'nope.toml'}: cannot read config file"


def test_unreadable_config_directory(dne_bin, tmp_path):
    proc = run_dne(dne_bin, "run", "--config", tmp_path, "--out", tmp_path / "o")
    assert proc.returncode == 2
    assert str(tmp_path) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bad_set_override(dne_bin, tmp_path):
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path / "o", "--set", "dne.nope=3")
    assert proc.returncode == 2
    assert "unknown key 'dne.nope'" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_unknown_cli_option(dne_bin, tmp_path):
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--frobnicate")
    assert proc.returncode == 2
    assert "frobnicate" in proc.stderr


def test_unwritable_output_directory(dne_bin, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", blocker / "out")
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert line.startswith("dne: store error: output directory") and str(blocker / "out") in line
    assert blocker.read_text() == "a file, not a directory"


def test_out_path_with_backslash_and_quote_is_used_verbatim(dne_bin, tmp_path):
    out = tmp_path / 'a\\tb "q"'
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", out, *ONE_WHITEBOX,
                   "--set", "dne.method=none")
    assert proc.returncode == 0, proc.stderr
    assert len(only_h5(out)) == 1


def test_help(dne_bin):
    for cmd in ["run", "phantom", "inspect", "bench"]:
        proc = run_dne(dne_bin, cmd, "--help")
        assert proc.returncode == 0 and "usage: dne " + cmd in proc.stdout
    proc = run_dne(dne_bin, "run", "--help-config")
    assert "dne.lambda" in proc.stdout and "gezo.local_epochs" in proc.stdout
    assert "only for: gezo" in proc.stdout


def test_phantom_writes_pngs_and_manifest(phantom_dir):
    rows = (phantom_dir / "manifest.csv").read_text().strip().splitlines()
    assert rows[0] == "path,split,sex,label"
    assert len(rows) == 1 + 200
    first = rows[1].split(",")
    assert (phantom_dir / first[0]).is_file()
    assert (phantom_dir / first[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (phantom_dir / "montage.png").is_file()


def test_run_on_manifest_images_decoded_from_disk(dne_bin, phantom_dir, tmp_path):
    proc = run_dne(dne_bin, "run", "--config", MANIFEST_CONFIG, "--out", tmp_path, *MANIFEST_SMALL,
                   "--set", f"data.manifest=\"{phantom_dir / 'manifest.csv'}\"")
    assert proc.returncode == 0, proc.stderr
    (path,) = only_h5(tmp_path)
    with h5py.File(path) as f:
        assert f["test/score"].shape == (80,)
    assert check_file(str(path), 1e-6) == []


def test_bad_manifest_names_file_and_line(dne_bin, phantom_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(phantom_dir, data)
    rows = (data / "manifest.csv").read_text().splitlines()
    rows[5] = "train/missing.png,train,1,0"
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    proc = run_dne(dne_bin, "run", "--config", MANIFEST_CONFIG, "--out", out, *MANIFEST_SMALL,
                   "--set", f"data.manifest=\"{data / 'manifest.csv'}\"")
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1
    assert line.startswith("dne: data error:") and "manifest.csv:6" in line, line
    assert only_h5(out) == []


def test_corrupt_image_is_data_error(dne_bin, phantom_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(phantom_dir, data)
    victim = (data / "manifest.csv").read_text().splitlines()[3].split(",")[0]
    (data / victim).write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    proc = run_dne(dne_bin, "run", "--config", MANIFEST_CONFIG, "--out", tmp_path / "out", *MANIFEST_SMALL,
                   "--set", f"data.manifest=\"{data / 'manifest.csv'}\"")
    assert proc.returncode == 2
    assert "dne: data error:" in proc.stderr and victim.split("/")[-1] in proc.stderr


def test_bad_torchscript_is_model_error(dne_bin, tmp_path):
    bogus = tmp_path / "enc.pt"
    bogus.write_text("not torchscript")
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path / "out", *SMALL,
                   "--set", "fm.kind=torchscript", "--set", f"fm.torchscript=\"{bogus}\"")
    assert proc.returncode == 2
    assert "dne: model error: fm.torchscript:" in proc.stderr and str(bogus) in proc.stderr


def test_bench_prints_its_tables(dne_bin):
    # A smoke test of the benchmark modes on tiny settings: the numbers themselves are recorded
    # in docs/performance.md, never asserted.
    proc = run_dne(dne_bin, "bench", "--repeats", "1", "--set", "fm.width=8", "--set", "dne.batch_size=10",
                   "--set", "fm.batch_size=20")
    assert proc.returncode == 0, proc.stderr
    assert "GEMM float32 1024^3 [GFLOP/s]" in proc.stdout and "white-box DNE step" in proc.stdout
    proc = run_dne(dne_bin, "bench", "--zo", "gezo", "--steps", "1", "--set", "fm.width=8",
                   "--set", "dne.batch_size=10", "--set", "zo.candidates=2", mpi_ranks=2)
    assert proc.returncode == 0, proc.stderr
    # batch 10 x (1 + 2 candidates x 2 signs x 2 local iterations) = 90 images per step
    assert re.search(r"images embedded per step \(whole group\)\s+90\n", proc.stdout), proc.stdout
    assert "bytes communicated per step" in proc.stdout
    proc = run_dne(dne_bin, "bench", "--zo", "adam")
    assert proc.returncode == 2 and '"adam" is not one of' in proc.stderr
