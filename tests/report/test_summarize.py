"""Tests of analysis/summarize.py on run directories written by hand with h5py (conftest.py) and by
the dne binary.

- 95% t-intervals (t = 4.303 for 2 degrees of freedom) and the paired DNE - control and DNE - ERM
  differences of three seeds of ERM and white-box DNE, computed by hand; an ERM of other data is
  never paired.
- summarize.py --group and report.py's summary.csv agree on n, mean and std for every cell of the
  hand-built sweep (cells with n = 2, n = 1 and n = 0) and of a sweep run by `dne`, both checked
  against numbers computed by hand or with numpy from the experiment files in the test.
- summarize reads index.h5's complete rows: stray or failed experiments' files in experiments/
  change nothing; a run directory without index.h5 is one error line and exit status 2.
"""
import contextlib
import csv
import io
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis import summarize

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "analysis" / "summarize.py"
REPORT = REPO / "analysis" / "report.py"
METRICS = ["accuracy", "auc", "eo_n", "eo_p", "di", "sa_leakage_auc", "frozen_sa_accuracy", "noise_l2"]


def run_script(*argv, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, argv)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def md_table(text, header_prefix):
    """(header, rows) of the Markdown table whose header line starts with header_prefix."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_prefix))
    head = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return head, rows


# --------------------------------------------------------------------------------------------
# Intervals and paired differences by hand
# --------------------------------------------------------------------------------------------

def write_by_hand(report_h5, run_dir, experiments):
    """experiments: (id, method, seed, bias, eo_p, control eo_p or None). Every other metric is
    0.5 (the control's too); each complete row gets a small experiment file."""
    run_dir = Path(run_dir)
    (run_dir / "experiments").mkdir(parents=True, exist_ok=True)
    rows = []
    for exp_id, method, seed, bias, eo_p, control_eo_p in experiments:
        metrics = {m: (eo_p if m == "eo_p" else 0.5) for m in METRICS}
        if control_eo_p is not None:
            metrics.update({f"control_{m}": (control_eo_p if m == "eo_p" else 0.5) for m in METRICS})
        with h5py.File(run_dir / "experiments" / f"{exp_id}.h5", "w") as f:
            f.attrs["id"] = exp_id
            f.attrs["status"] = "complete"
            g = f.create_group("metrics")
            for k, v in metrics.items():
                if not k.startswith("control_"):
                    g.attrs[k] = np.float64(v)
        rows.append({"id": exp_id, "status": "complete", "method": method, "seed": seed,
                     "axes": {"data.bias": bias}, "metrics": metrics})
    report_h5.write_index(run_dir, rows, ["data.bias", "dne.method", "sweep.seeds"], metric_names=list(METRICS))
    return run_dir


def test_intervals_and_paired_differences_by_hand(tmp_path, report_h5):
    # ERM eo_p 0.30, 0.34, 0.32; DNE 0.20, 0.22, 0.24; control 0.25, 0.26, 0.30.
    exps = []
    for seed, (erm, dne, ctl) in enumerate([(0.30, 0.20, 0.25), (0.34, 0.22, 0.26), (0.32, 0.24, 0.30)]):
        exps += [(f"e{seed}", "none", seed, 0.9, erm, None), (f"w{seed}", "whitebox", seed, 0.9, dne, ctl)]
    exps.append(("other_data", "none", 0, 0.5, 0.99, None))  # same seed, other data: never paired
    write_by_hand(report_h5, tmp_path, exps)
    proc = run_script(tmp_path, "--group")
    assert proc.returncode == 0, proc.stderr
    head, rows = md_table(proc.stdout, "| dne.method | data.bias | seeds | accuracy")
    row = next(r for r in rows if r[head.index("dne.method")] == "whitebox")
    half = 4.303 * 0.02 / math.sqrt(3)
    assert row[head.index("seeds")] == "3"
    assert row[head.index("eo_p")] == f"0.220 ± 0.020 [{0.22 - half:.3f}, {0.22 + half:.3f}]"
    other = next(r for r in rows if r[head.index("data.bias")] == "0.5")
    assert other[head.index("seeds")] == "1" and other[head.index("eo_p")] == "0.990"  # n = 1: the mean alone
    head, rows = md_table(proc.stdout, "| dne.method | data.bias | seeds | accuracy: DNE - control")
    (row,) = rows
    # DNE - control: -0.05, -0.04, -0.06 -> mean -0.05, sd 0.01; DNE - ERM: -0.10, -0.12, -0.08 -> -0.10, sd 0.02.
    h1, h2 = 4.303 * 0.01 / math.sqrt(3), 4.303 * 0.02 / math.sqrt(3)
    assert row[head.index("eo_p: DNE - control")] == f"-0.050 [{-0.05 - h1:+.3f}, {-0.05 + h1:+.3f}] *"
    assert row[head.index("eo_p: DNE - ERM")] == f"-0.100 [{-0.10 - h2:+.3f}, {-0.10 + h2:+.3f}] *"
    assert row[head.index("accuracy: DNE - control")] == "+0.000 [+0.000, +0.000]"  # no spread, no star


def test_conclude_says_what_the_paired_differences_show(tmp_path, report_h5):
    # The hand sweep above: eo_p DNE - ERM -0.10 * and DNE - control -0.05 *: both shown.
    exps = []
    for seed, (erm, dne, ctl) in enumerate([(0.30, 0.20, 0.25), (0.34, 0.22, 0.26), (0.32, 0.24, 0.30)]):
        exps += [(f"e{seed}", "none", seed, 0.9, erm, None), (f"w{seed}", "whitebox", seed, 0.9, dne, ctl)]
    write_by_hand(report_h5, tmp_path, exps)
    proc = run_script(tmp_path, "--group", "--conclude")
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if line.strip().startswith("eo_p: vs ERM")]
    assert line.strip().endswith("better than ERM and than random noise of the same norm: the gap is smaller (both shown)")


@pytest.mark.parametrize("control, erm, expected", [
    ([-0.05, -0.04, -0.06], [-0.10, -0.12, -0.08], "better than ERM and than random noise of the same norm: the gap is smaller (both shown)"),
    ([+0.01, -0.01, +0.02], [-0.10, -0.12, -0.08], "better than ERM in the mean, but no better than random noise of the same norm"),
    ([-0.05, +0.04, -0.06], [-0.10, +0.12, -0.08], "better than ERM and than random noise of the same norm in the mean"),
    ([+0.20, +0.21, +0.19], [+0.25, +0.24, +0.26], "worse than ERM: the gap is wider (shown)"),
    ([+0.20, -0.21, +0.19], [+0.25, -0.24, +0.26], "no better than ERM (the gap is wider in the mean; the interval includes 0)"),
])
def test_verdict_by_hand(control, erm, expected):
    assert summarize.verdict(control, erm, "eo_p").startswith(expected)


def test_verdict_names_the_probe_for_leakage():
    assert summarize.verdict([-0.05, -0.04, -0.06], [-0.10, -0.12, -0.08], "sa_leakage_auc").endswith(
        "a fresh probe reads sex less well (both shown)")


def test_no_noise_experiment_means_no_paired_table(tmp_path, report_h5):
    write_by_hand(report_h5, tmp_path, [("e0", "none", 0, 0.9, 0.3, None), ("e1", "none", 1, 0.9, 0.3, None)])
    proc = run_script(tmp_path, "--group")
    assert proc.returncode == 0 and "Paired differences" not in proc.stdout


# --------------------------------------------------------------------------------------------
# summarize --group and report.py's summary.csv agree
# --------------------------------------------------------------------------------------------

def parse_stat(text):
    """(mean, std) of a Markdown cell: 'm ± s [lo, hi]', 'm' (n = 1: std NaN), '1,000 ± 0'
    (queries), '—' (n = 0) or 'n/a' (both NaN)."""
    if text in ("—", "n/a"):
        return math.nan, math.nan
    parts = text.replace(",", "").split(" ± ")
    mean = float(parts[0])
    std = float(parts[1].split(" [")[0]) if len(parts) > 1 else math.nan
    return mean, std


def summarize_group(run_dir):
    """summarize.py --group of run_dir: {cell key tuple: {"n": int, column: (mean, std)}}."""
    proc = run_script(run_dir, "--group")
    assert proc.returncode == 0, proc.stderr
    head, rows = md_table(proc.stdout, "| dne.method")
    first = head.index("seeds")
    out = {}
    for r in rows:
        cell = {"n": int(r[first])}
        cell.update({col: parse_stat(v) for col, v in zip(head[first + 1:], r[first + 1:])})
        out[tuple(r[:first])] = cell
    return head[:first], out


def summary_csv(run_dir, keys):
    """report.py's summary.csv of run_dir: {cell key tuple: csv row}."""
    out = Path(run_dir) / "rep"
    proc = subprocess.run([sys.executable, str(REPORT), str(run_dir), "--out", str(out), "--no-figures"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out / "summary.csv", newline="") as fh:
        return {tuple(r[k] for k in keys): r for r in csv.DictReader(fh)}


def same(a, b, tol):
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def assert_agree(run_dir, expected):
    """summarize --group and summary.csv have the same cells, n, mean and std (summarize prints 3
    decimals, queries 0), and both match `expected`: {cell: (n, {column: (mean, std)})}."""
    keys, group = summarize_group(run_dir)
    csv_cells = summary_csv(run_dir, keys)
    assert set(group) == set(csv_cells) == set(expected)
    for cell, (n, columns) in expected.items():
        g, c = group[cell], csv_cells[cell]
        assert g["n"] == int(c["n_seeds"]) == n, cell
        for col in summarize.COLUMNS:  # every summarize column: the two agree
            tol = 0.5 if col == "queries" else 5e-4 + 1e-9  # summarize rounds half-way cases either way
            for i, stat in enumerate(("mean", "std")):
                assert same(g[col][i], float(c[f"{col}_{stat}"]), tol), (cell, col, stat, g[col], c[f"{col}_{stat}"])
        for col, (mean, std) in columns.items():  # and the independent numbers
            assert same(float(c[f"{col}_mean"]), mean, 1e-9) and same(float(c[f"{col}_std"]), std, 1e-9), (cell, col)
            tol = 0.5 if col == "queries" else 5e-4 + 1e-9
            assert same(g[col][0], mean, tol) and same(g[col][1], std, tol), (cell, col)


def test_group_agrees_with_report_on_the_hand_sweep(tmp_path, report_h5):
    # conftest.HAND_SWEEP: the per-seed values below are worked out there by hand (accuracy = right
    # predictions / 8; eo_p = |acc(a1, y1) - acc(a0, y1)|; eo_n the same on y = 0).
    run_dir = report_h5.build_hand_sweep(tmp_path / "run")
    s = 0.125 / math.sqrt(2)  # sample std of two values 1/8 apart
    expected = {
        ("none", "0.001"): (2, {"accuracy": (0.8125, s), "eo_p": (0.25, 0.5 / math.sqrt(2)),
                                "eo_n": (0.0, 0.0), "queries": (0.0, 0.0)}),
        ("whitebox", "0"): (2, {"accuracy": (0.9375, s), "eo_p": (0.0, 0.0), "eo_n": (0.25, 0.5 / math.sqrt(2)),
                                "queries": (400.0, 0.0)}),
        # one complete seed (the other failed): the mean is that seed's value, the std undefined (NaN)
        ("whitebox", "0.1"): (1, {"accuracy": (0.75, math.nan), "eo_p": (0.5, math.nan), "eo_n": (0.5, math.nan),
                                  "queries": (400.0, math.nan)}),
        ("gezo", "0"): (2, {"accuracy": (0.875, 0.0), "eo_p": (0.0, 0.0), "eo_n": (0.5, 0.0),
                            "queries": (1000.0, 0.0)}),
        ("gezo", "0.1"): (0, {"accuracy": (math.nan, math.nan)}),  # running and pending only
    }
    assert_agree(run_dir, expected)


def test_a_nan_seed_makes_the_cell_nan_in_both(tmp_path, report_h5):
    # ERM, two seeds: seed 1 has only positive test labels, so its AUC and eo_n are undefined
    # (NaN). Neither tool averages the undefined value away: the cell's AUC is NaN in both, while
    # accuracy (7/8 and 3/4) is defined: mean 0.8125, std 0.125 / sqrt 2.
    h = report_h5
    run_dir = tmp_path / "run"
    m0 = h.write_experiment(run_dir, "f000000000000000", method="none", seed=0,
                            score=h.scores_for([i != 6 for i in range(8)], h.LABEL), label=h.LABEL, sa=h.SA)
    m1 = h.write_experiment(run_dir, "f000000000000001", method="none", seed=1, score=[0.9, 0.8, 0.3, 0.9],
                            label=[1, 1, 1, 1], sa=[0, 0, 1, 1])
    assert math.isnan(m1["auc"]) and m1["accuracy"] == 0.75 and m0["accuracy"] == 0.875
    h.write_index(run_dir, [{"id": f"f00000000000000{s}", "status": "complete", "method": "none", "seed": s,
                             "axes": {}, "metrics": m} for s, m in ((0, m0), (1, m1))], ["sweep.seeds"])
    assert_agree(run_dir, {("none",): (2, {"accuracy": (0.8125, 0.125 / math.sqrt(2)),
                                           "auc": (math.nan, math.nan), "eo_n": (math.nan, math.nan)})})


def test_group_agrees_with_report_on_a_dne_sweep(tmp_path, dne_bin):
    # A real sweep: ERM and white-box DNE, two seeds each. The expected numbers are numpy's mean and
    # sample std of each file's /metrics (read here with h5py), grouped by the file's method.
    from dne_testing import SMALL, run_dne
    run_dir = tmp_path / "run"
    proc = run_dne(dne_bin, "run", "--config", REPO / "experiments" / "quickstart.toml", "--out", run_dir,
                   *SMALL, "--set", "sweep.seeds=[0,1]", timeout=300)
    assert proc.returncode == 0, proc.stderr
    values = {}
    for path in sorted((run_dir / "experiments").glob("*.h5")):
        with h5py.File(path, "r") as f:
            m = {k: float(f["metrics"].attrs[k]) for k in ("accuracy", "eo_p", "sa_leakage_auc")}
            m["queries"] = float(f["provenance"].attrs["queries"])
            values.setdefault(f.attrs["method"], []).append(m)
    assert sorted((k, len(v)) for k, v in values.items()) == [("none", 2), ("whitebox", 2)]
    expected = {(method,): (2, {col: (float(np.mean([m[col] for m in ms])), float(np.std([m[col] for m in ms], ddof=1)))
                                for col in ("accuracy", "eo_p", "sa_leakage_auc", "queries")})
                for method, ms in values.items()}
    assert_agree(run_dir, expected)


# --------------------------------------------------------------------------------------------
# summarize reads the index, not the directory listing
# --------------------------------------------------------------------------------------------

def test_files_the_index_does_not_list_as_complete_are_ignored(tmp_path, report_h5):
    h = report_h5
    run_dir = h.build_hand_sweep(tmp_path / "run")
    before = {flag: run_script(run_dir, *flag).stdout for flag in ((), ("--group",))}
    # A stray experiment file (not in the index) and a file of the failed row, both with metrics
    # that would move every mean they were averaged into.
    wild = {m: 0.0 for m in ("accuracy", "eo_p", "eo_n", "sa_leakage_auc")}
    h.write_experiment(run_dir, "ffffffffffffffff", method="whitebox", seed=7, score=h.scores_for([False] * 8, h.LABEL),
                       label=h.LABEL, sa=h.SA, metric_overrides=wild, queries=99)
    h.write_experiment(run_dir, "b000000000000001", method="whitebox", seed=1, score=h.scores_for([False] * 8, h.LABEL),
                       label=h.LABEL, sa=h.SA, metric_overrides=wild, queries=99)
    for flag, text in before.items():
        assert run_script(run_dir, *flag).stdout == text, flag
    # what the index lists: 7 complete experiments, the failed cell's one seed
    lines = [ln for ln in before[()].splitlines() if ln.strip().endswith("complete")]
    assert len(lines) == 7
    head, rows = md_table(before[("--group",)], "| dne.method")
    wb = next(r for r in rows if r[:2] == ["whitebox", "0.1"])
    assert wb[head.index("seeds")] == "1" and wb[head.index("accuracy")] == "0.750"


def test_missing_index_is_one_error_line_and_exit_2(tmp_path, report_h5):
    h = report_h5
    h.write_experiment(tmp_path, "e000000000000000", method="none", seed=0, score=h.scores_for([True] * 8, h.LABEL),
                       label=h.LABEL, sa=h.SA)  # an experiment file, but no index.h5
    proc = run_script(tmp_path, "--group", cwd="/")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("summarize: error: "), proc.stderr
    assert str(tmp_path / "index.h5") in lines[0] and "not found" in lines[0]


def test_missing_file_of_a_complete_row_is_exit_2(tmp_path, report_h5):
    run_dir = report_h5.build_hand_sweep(tmp_path / "run")
    victim = run_dir / "experiments" / "a000000000000001.h5"
    victim.unlink()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert summarize.main([str(run_dir)]) == 2
    assert err.getvalue().count("\n") == 1 and str(victim) in err.getvalue()


def test_nothing_complete_is_exit_1(tmp_path, report_h5):
    rows = [{"id": f"{i:016x}", "status": s, "method": "none", "seed": i, "axes": {}}
            for i, s in enumerate(["running", "pending"])]
    report_h5.write_index(tmp_path, rows, ["sweep.seeds"])
    proc = run_script(tmp_path)
    assert proc.returncode == 1 and "no complete experiment" in proc.stderr and "1 running, 1 pending" in proc.stderr


@pytest.mark.parametrize("flag", [[], ["--group"]])
def test_runs_from_any_working_directory(tmp_path, report_h5, flag):
    run_dir = report_h5.build_hand_sweep(tmp_path / "run")
    proc = run_script(run_dir, *flag, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
