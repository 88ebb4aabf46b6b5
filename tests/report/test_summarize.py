"""Tests of analysis/summarize.py --group on experiment files written by hand with h5py.

Three seeds of ERM and of white-box DNE (with its /control/metrics): the 95% t-intervals
(t = 4.303 for 2 degrees of freedom) and the paired DNE - control and DNE - ERM differences are
computed by hand below; an ERM of other data is never paired.
"""
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "analysis" / "summarize.py"
METRICS = ["accuracy", "auc", "eo_n", "eo_p", "di", "sa_leakage_auc", "frozen_sa_accuracy", "noise_l2"]


def write(run_dir, name, method, seed, eo_p, control_eo_p=None, bias=0.9):
    path = Path(run_dir) / "experiments" / f"{name}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["config"] = (f'[data]\nbias = {bias}\n[dne]\nmethod = "{method}"\n[sweep]\nseeds = {seed}\n')
        f.attrs["status"] = "complete"
        f.create_group("provenance").attrs["queries"] = np.int64(0)
        g = f.create_group("metrics")
        for m in METRICS:
            g.attrs[m] = np.float64(eo_p if m == "eo_p" else 0.5)
        if control_eo_p is not None:
            c = f.create_group("control/metrics")
            for m in METRICS:
                c.attrs[m] = np.float64(control_eo_p if m == "eo_p" else 0.5)


def cells(text, header_prefix):
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(header_prefix))
    head = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in lines[start + 2:] if l.startswith("|")]
    return head, rows


def test_intervals_and_paired_differences_by_hand(tmp_path):
    # ERM eo_p 0.30, 0.34, 0.32; DNE 0.20, 0.22, 0.24; control 0.25, 0.26, 0.30.
    for seed, (erm, dne, ctl) in enumerate([(0.30, 0.20, 0.25), (0.34, 0.22, 0.26), (0.32, 0.24, 0.30)]):
        write(tmp_path, f"e{seed}", "none", seed, erm)
        write(tmp_path, f"w{seed}", "whitebox", seed, dne, ctl)
    write(tmp_path, "other_data", "none", 0, 0.99, bias=0.5)  # same seed, other data: never paired
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--group"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    head, rows = cells(proc.stdout, "| data.bias")
    row = next(r for r in rows if r[head.index("dne.method")] == "whitebox")
    half = 4.303 * 0.02 / math.sqrt(3)
    assert row[head.index("eo_p")] == f"0.220 ± 0.020 [{0.22 - half:.3f}, {0.22 + half:.3f}]"
    head, rows = cells(proc.stdout, "| data.bias | dne.method | seeds | accuracy: DNE - control")
    (row,) = rows
    # DNE - control: -0.05, -0.04, -0.06 -> mean -0.05, sd 0.01; DNE - ERM: -0.10, -0.12, -0.08 -> -0.10, sd 0.02.
    h1, h2 = 4.303 * 0.01 / math.sqrt(3), 4.303 * 0.02 / math.sqrt(3)
    assert row[head.index("eo_p: DNE - control")] == f"-0.050 [{-0.05 - h1:+.3f}, {-0.05 + h1:+.3f}] *"
    assert row[head.index("eo_p: DNE - ERM")] == f"-0.100 [{-0.10 - h2:+.3f}, {-0.10 + h2:+.3f}] *"
    assert row[head.index("accuracy: DNE - control")] == "+0.000 [+0.000, +0.000]"  # no spread, no star


def test_no_noise_experiment_means_no_paired_table(tmp_path):
    write(tmp_path, "e0", "none", 0, 0.3)
    write(tmp_path, "e1", "none", 1, 0.3)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--group"], capture_output=True, text=True)
    assert proc.returncode == 0 and "Paired differences" not in proc.stdout
