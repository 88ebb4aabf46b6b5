"""Tests of analysis/fm_evidence.py on experiment files written by hand with h5py.

Two FMs x 3 seeds with chosen disease and SA AUCs: the means, sample standard deviations, 95%
t-intervals (t = 4.303 for 2 degrees of freedom) and paired differences are computed by hand
below; bad input exits 2 with one line.
"""
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "analysis" / "fm_evidence.py"


def write(run_dir, name, *, kind, weights, pool, seed, auc, sa_auc, method="none"):
    path = Path(run_dir) / "experiments" / f"{name}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["config"] = (f'[fm]\nkind = "{kind}"\nweights = "{weights}"\npool = "{pool}"\n'
                             f'[dne]\nmethod = "{method}"\n[sweep]\nseeds = {seed}\n')
        g = f.create_group("metrics")
        g.attrs["auc"] = np.float64(auc)
        g.attrs["sa_probe_clean_auc"] = np.float64(sa_auc)


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def run_dir(tmp_path):
    # random ViT: disease 0.80, 0.82, 0.84 (mean 0.82, sd 0.02); pretrained: 0.85, 0.88, 0.88
    # (mean 0.87); paired differences 0.05, 0.06, 0.04 (mean 0.05, sd 0.01).
    for seed, (r, p) in enumerate([(0.80, 0.85), (0.82, 0.88), (0.84, 0.88)]):
        write(tmp_path, f"r{seed}", kind="vit", weights="", pool="mean", seed=seed, auc=r, sa_auc=0.9)
        write(tmp_path, f"p{seed}", kind="vit", weights="runs/fm/vit_phantom.h5", pool="mean", seed=seed,
              auc=p, sa_auc=0.95)
    write(tmp_path, "dne", kind="vit", weights="", pool="mean", seed=0, auc=0.1, sa_auc=0.1, method="whitebox")
    return tmp_path


def row(text, label):
    (line,) = [l for l in text.splitlines() if l.startswith(f"| {label} |")]
    return [c.strip() for c in line.strip("|").split("|")]


def test_means_intervals_and_paired_differences_by_hand(run_dir):
    proc = run(run_dir, "--baseline", "vit random mean")
    assert proc.returncode == 0, proc.stderr
    random_row = row(proc.stdout, "vit random mean")
    half = 4.303 * 0.02 / math.sqrt(3)  # 0.0497
    assert random_row[1] == "0,1,2"
    assert random_row[2] == f"0.820 ± 0.020 [{0.82 - half:.3f}, {0.82 + half:.3f}]"
    assert random_row[3].startswith("0.900 ± 0.000")
    pre = row(proc.stdout, "vit vit_phantom mean")
    sd = math.sqrt(((0.85 - 0.87) ** 2 + 2 * (0.88 - 0.87) ** 2) / 2)
    assert pre[2].startswith(f"0.870 ± {sd:.3f}")
    d_half = 4.303 * 0.01 / math.sqrt(3)
    assert pre[4] == f"0.050 ± 0.010 [{0.05 - d_half:.3f}, {0.05 + d_half:.3f}]"
    assert pre[5].startswith("0.050 ± 0.000")
    assert "whitebox" not in proc.stdout and "0.100" not in proc.stdout  # only ERM experiments


def test_loss_plot_is_a_png(run_dir, tmp_path):
    fm = tmp_path / "fm.h5"
    with h5py.File(fm, "w") as f:
        f.create_dataset("pretrain/loss", data=np.linspace(2.0, 0.5, 50))
    png = tmp_path / "loss.png"
    proc = run(run_dir, "--loss-plot", png, fm)
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, fragment", [
    (["--baseline", "vit nope mean"], "--baseline 'vit nope mean' is not one of"),
    (["--loss-plot", "x.png", "missing.h5"], "missing.h5"),
])
def test_bad_input_is_one_line_exit_2(run_dir, args, fragment):
    proc = run(run_dir, *args)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and fragment in proc.stderr


def test_only_the_files_the_index_lists_count(run_dir):
    # A stale file of an earlier sweep (other FM weights, same label and seed) must not be read.
    write(run_dir, "stale", kind="vit", weights="", pool="mean", seed=0, auc=0.1, sa_auc=0.1)
    names = [f"experiments/r{s}.h5" for s in range(3)] + [f"experiments/p{s}.h5" for s in range(3)] + [""]
    with h5py.File(run_dir / "index.h5", "w") as f:
        f.create_dataset("experiments/file", data=np.array(names, dtype=object), dtype=h5py.string_dtype())
    proc = run(run_dir)
    assert proc.returncode == 0, proc.stderr
    assert row(proc.stdout, "vit random mean")[2].startswith("0.820 ± 0.020")


def test_two_experiments_for_one_fm_and_seed_is_exit_2(run_dir):
    write(run_dir, "r0bis", kind="vit", weights="", pool="mean", seed=0, auc=0.5, sa_auc=0.5)
    proc = run(run_dir)
    assert proc.returncode == 2 and "a second experiment for FM 'vit random mean' and seed 0" in proc.stderr


def test_a_directory_without_erm_files_is_exit_2(tmp_path):
    proc = run(tmp_path)
    assert proc.returncode == 2 and "no ERM" in proc.stderr
