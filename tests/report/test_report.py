"""Tests of the sweep report (analysis/report.py, analysis/report_figures.py).

Unit tests run on run directories written by hand with h5py (conftest.build_hand_sweep: an
index.h5 with complete, failed, running and pending rows and 8-image experiment files whose
accuracy and eo_p are computed by hand below). The end-to-end test runs a tiny sweep with the
dne binary (the shared `dne_bin` fixture: $DNE_BIN or build/dne; it fails when the binary is missing).

Run: /usr/bin/python3 -m pytest -q tests/report
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

from analysis import report
from analysis import report_figures

REPO = Path(__file__).resolve().parents[2]

REPORT = REPO / "analysis" / "report.py"
FIGURES = ["figure2a_lambda.png", "noise_maps.png", "pareto.png", "convergence.png"]


def run_main(*argv):
    """analysis.report.main in this process; returns (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = report.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def run_script(*argv):
    """analysis/report.py as a separate process, the way users run it."""
    return subprocess.run([sys.executable, str(REPORT), *map(str, argv)],
                          capture_output=True, text=True, timeout=120)


def read_summary(path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {(r["dne.method"], r["dne.lambda"]): r for r in rows}


@pytest.fixture(scope="module")
def hand_report(tmp_path_factory, report_h5):
    """The hand-built sweep and its full report (figures included), made once."""
    run_dir = report_h5.build_hand_sweep(tmp_path_factory.mktemp("hand") / "run")
    out = run_dir / "rep"
    rc, stdout, stderr = run_main(run_dir, "--out", out)
    return run_dir, out, rc, stdout, stderr


# --------------------------------------------------------------------------------------------
# summary.csv, table.md, report.md on the hand-built sweep
# --------------------------------------------------------------------------------------------

def test_summary_csv_matches_hand_computed_values(hand_report):
    _, out, rc, _, stderr = hand_report
    assert rc == 0, stderr
    cells = read_summary(out / "summary.csv")
    # One row per cell (method, lambda); the seed is aggregated. ERM's lambda is its default.
    assert set(cells) == {("none", "0.001"), ("whitebox", "0"), ("whitebox", "0.1"),
                          ("gezo", "0"), ("gezo", "0.1")}
    erm = cells[("none", "0.001")]
    # ERM seed 0: 7/8 right, eo_p = |acc_a1_y1 - acc_a0_y1| = |1/2 - 1| = 0.5
    # ERM seed 1: 6/8 right, eo_p = |1/2 - 1/2| = 0
    assert erm["n_seeds"] == "2" and erm["seeds"] == "0 1"
    assert float(erm["accuracy_mean"]) == pytest.approx(0.8125)
    assert float(erm["accuracy_std"]) == pytest.approx(0.125 / math.sqrt(2))  # sample std of 7/8, 6/8
    assert float(erm["eo_p_mean"]) == pytest.approx(0.25)
    assert float(erm["eo_p_std"]) == pytest.approx(0.5 / math.sqrt(2))
    assert float(erm["queries_mean"]) == 0
    assert float(erm["wall_s_mean"]) == pytest.approx(2.5)  # wall_s = 2 + seed

    wb0 = cells[("whitebox", "0")]
    # seed 0 all right (acc 1, eo_n 0); seed 1 misses one a0y0 (acc 7/8, eo_n |1 - 1/2| = 0.5)
    assert float(wb0["accuracy_mean"]) == pytest.approx(0.9375)
    assert float(wb0["eo_n_mean"]) == pytest.approx(0.25)
    assert float(wb0["eo_p_mean"]) == 0 and float(wb0["eo_p_std"]) == 0

    wb1 = cells[("whitebox", "0.1")]
    # One complete seed (the other failed): misses one a1y0 and one a1y1 -> acc 6/8, eo_p 0.5;
    # the sample std of one value is undefined.
    assert wb1["n_seeds"] == "1" and wb1["n_failed"] == "1"
    assert float(wb1["accuracy_mean"]) == pytest.approx(0.75)
    assert math.isnan(float(wb1["accuracy_std"]))
    assert float(wb1["eo_p_mean"]) == pytest.approx(0.5)
    assert float(wb1["queries_mean"]) == 400

    gz = cells[("gezo", "0.1")]
    assert (gz["n_seeds"], gz["n_running"], gz["n_pending"]) == ("0", "1", "1")
    assert math.isnan(float(gz["accuracy_mean"]))
    # Every /metrics name has a mean and std column, plus queries and wall_s.
    for name in ("auc", "di", "worst_group_auc", "sa_leakage_auc", "frozen_sa_accuracy", "noise_l2"):
        assert f"{name}_mean" in erm and f"{name}_std" in erm


def test_not_complete_rows_are_listed(hand_report):
    _, out, rc, stdout, _ = hand_report
    assert "10 experiments: 7 complete, 1 failed, 1 running, 1 pending" in stdout
    text = (out / "report.md").read_text()
    for where in (stdout, text):
        assert "b000000000000001" in where and "NumericError: loss is NaN at step 3" in where
        assert "d000000000000000" in where and "running" in where
        assert "d000000000000001" in where and "pending" in where
        assert "recomputed metrics agree for 7 experiments" in where
    # Complete rows are not in the "not complete" list.
    not_complete = text.split("## Experiments not complete", 1)[1]
    assert "e000000000000000" not in not_complete
    assert "sweep not finished" in text


def table_blocks(text):
    """The Markdown tables of a text, each a list of its '| ...' lines."""
    blocks, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks


def cells_of(line):
    return [c.strip() for c in line.strip("|").split("|")]


def test_table_md_one_row_per_method_and_cell(hand_report):
    _, out, _, _, _ = hand_report
    table = (out / "table.md").read_text()
    lines = table_blocks(table)[0]
    header = cells_of(lines[0])
    assert header[:3] == ["method", "setting", "n"]
    for col in ("accuracy", "auc", "eo_n", "eo_p", "di", "sa_leakage_auc", "frozen_sa_accuracy", "queries"):
        assert any(h.split()[0] == col for h in header), col
    body = {tuple(cells_of(ln))[:2]: ln for ln in lines[1:]}
    assert set(body) == {("none", "-"), ("whitebox", "lambda=0"), ("whitebox", "lambda=0.1"),
                         ("gezo", "lambda=0"), ("gezo", "lambda=0.1"), ("↳ control", "")}
    # accuracy mean ± sample std [95% t-interval], 2 seeds: 0.8125 ± 0.0884, half 12.706 * 0.0884 / sqrt(2)
    assert "0.812 ± 0.088 [0.018, 1.607]" in body[("none", "-")]
    assert "| 1 (1 failed) |" in body[("whitebox", "lambda=0.1")]
    assert "| 0.750 |" in body[("whitebox", "lambda=0.1")]    # one seed: no ±
    assert "0 (1 running, 1 pending)" in body[("gezo", "lambda=0.1")]
    assert "**0.938 ± 0.088 [0.143, 1.732]**" in body[("whitebox", "lambda=0")]  # best accuracy is bold
    assert "1,000 ± 0" in body[("gezo", "lambda=0")]          # queries
    # The control row follows its cell: accuracy 0.75 and 0.875 -> 0.812 ± 0.088
    control = lines.index(body[("↳ control", "")])
    assert lines[control - 1] == body[("whitebox", "lambda=0")]
    assert cells_of(body[("↳ control", "")])[3].startswith("0.812 ± 0.088")


def test_table_md_paired_differences_by_hand(hand_report):
    _, out, _, _, _ = hand_report
    paired = table_blocks((out / "table.md").read_text())[1]
    header = cells_of(paired[0])
    rows = {tuple(cells_of(ln)[:2]): dict(zip(header, cells_of(ln))) for ln in paired[1:]}
    wb = rows[("whitebox", "lambda=0")]
    # accuracy - control per seed: 1 - 0.75, 0.875 - 0.875 -> +0.125, sd 0.1768, half 12.706 * 0.1768 / sqrt 2
    assert wb["accuracy: − control"] == "+0.125 [-1.463, +1.713]"
    # accuracy - ERM of the same seed: 1 - 7/8, 7/8 - 6/8 -> +0.125 exactly, an interval of width 0
    assert wb["accuracy: − ERM"] == "+0.125 [+0.125, +0.125] *"
    # eo_p - ERM: 0 - 0.5, 0 - 0 -> -0.25, sd 0.3536, half 12.706 / 4 = 3.1765
    assert wb["eo_p: − ERM"] == "-0.250 [-3.426, +2.926]"
    # no control for gezo in the hand sweep; one seed for whitebox lambda 0.1: no interval
    assert rows[("gezo", "lambda=0")]["accuracy: − control"] == "n/a"
    assert rows[("whitebox", "lambda=0.1")]["accuracy: − ERM"] == "-0.125"


def test_table_cells_best_keeps_one_row_per_method(tmp_path, report_h5):
    run_dir = report_h5.build_hand_sweep(tmp_path / "run")
    rc, _, _ = run_main(run_dir, "--out", tmp_path / "rep", "--no-figures", "--table-cells", "best",
                        "--gap", "eo_p")
    assert rc == 0
    lines = table_blocks((tmp_path / "rep" / "table.md").read_text())[0]
    methods = [ln.strip("|").split("|")[0].strip() for ln in lines[1:]]
    assert methods == ["none", "whitebox", "↳ control", "gezo"]
    assert "lambda=0 " in lines[2]  # whitebox: eo_p 0 at lambda 0 beats 0.5 at lambda 0.1


# --------------------------------------------------------------------------------------------
# Recomputation check and bad input
# --------------------------------------------------------------------------------------------

def test_wrong_stored_metric_exits_3_naming_file_and_metric(tmp_path, report_h5):
    # /metrics/eo_p of one experiment (and its copy in index.h5) says 0.3; the test data give 0.5.
    bad = {"e000000000000000": {"eo_p": 0.3}}
    run_dir = report_h5.build_hand_sweep(tmp_path / "run", metric_overrides=bad, index_overrides=bad)
    proc = run_script(run_dir, "--out", tmp_path / "rep", "--no-figures")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "recomputed metrics agree for 6 experiments" in proc.stdout
    mismatch = [ln for ln in proc.stderr.splitlines() if "MISMATCH" in ln]
    assert len(mismatch) == 1
    assert "experiments/e000000000000000.h5" in mismatch[0] and "eo_p" in mismatch[0]
    assert "Traceback" not in proc.stderr
    # The report is still written, with the disagreement in it.
    assert (tmp_path / "rep" / "summary.csv").is_file()
    assert "e000000000000000.h5: eo_p stored=" in (tmp_path / "rep" / "report.md").read_text()


def test_index_copy_differing_from_file_exits_3(tmp_path, report_h5):
    run_dir = report_h5.build_hand_sweep(tmp_path / "run", index_overrides={"c000000000000001": {"accuracy": 0.5}})
    rc, _, err = run_main(run_dir, "--out", tmp_path / "rep", "--no-figures")
    assert rc == 3
    assert "c000000000000001.h5: metric accuracy in index.h5 is 0.5, file has 0.875" in err


def test_nan_metrics_compare_equal(tmp_path, report_h5):
    # All labels 1 in one experiment: AUC and every y=0 quantity are NaN, stored as NaN.
    run_dir = tmp_path / "run"
    m = report_h5.write_experiment(run_dir, "f000000000000000", method="none", seed=0,
                         score=[0.9, 0.2, 0.8, 0.7], label=[1, 1, 1, 1], sa=[0, 0, 1, 1])
    assert math.isnan(m["auc"]) and math.isnan(m["eo_n"])
    report_h5.write_index(run_dir, [{"id": "f000000000000000", "status": "complete", "method": "none",
                           "seed": 0, "axes": {}, "metrics": m}], [])
    rc, out, err = run_main(run_dir, "--out", tmp_path / "rep", "--no-figures")
    assert rc == 0, err
    assert "recomputed metrics agree for 1 experiments" in out


def test_missing_index_exits_2_with_one_line(tmp_path):
    (tmp_path / "experiments").mkdir()
    proc = run_script(tmp_path, "--out", tmp_path / "rep")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(tmp_path / "index.h5") in lines[0] and "not found" in lines[0]
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("damage", ["garbage_index", "garbage_experiment", "missing_experiment",
                                    "missing_dataset", "schema_version", "no_test_data"])
def test_unreadable_input_exits_2_naming_the_file(tmp_path, damage, report_h5):
    run_dir = report_h5.build_hand_sweep(tmp_path / "run")
    victim = run_dir / "experiments" / "a000000000000001.h5"
    if damage == "garbage_index":
        victim = run_dir / "index.h5"
        victim.write_bytes(b"not an HDF5 file\n" * 10)
    elif damage == "garbage_experiment":
        victim.write_bytes(b"\x00" * 100)
    elif damage == "missing_experiment":
        victim.unlink()
    elif damage == "missing_dataset":
        victim = run_dir / "index.h5"
        with h5py.File(victim, "a") as f:
            del f["experiments/status"]
    elif damage == "schema_version":
        victim = run_dir / "index.h5"
        with h5py.File(victim, "a") as f:
            f.attrs["schema_version"] = np.int64(2)
    elif damage == "no_test_data":
        with h5py.File(victim, "a") as f:
            del f["test/label"]
    rc, out, err = run_main(run_dir, "--out", tmp_path / "rep", "--no-figures")
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("report: error: "), err
    assert str(victim) in lines[0]


def test_no_traceback_from_the_script_on_bad_experiment(tmp_path, report_h5):
    run_dir = report_h5.build_hand_sweep(tmp_path / "run")
    (run_dir / "experiments" / "c000000000000000.h5").write_bytes(b"truncated")
    proc = run_script(run_dir, "--no-figures")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "c000000000000000.h5" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_nothing_complete_yet(tmp_path, report_h5):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rows = [{"id": f"{i:016x}", "status": s, "method": "whitebox", "seed": i, "axes": {"dne.lambda": 0.1}}
            for i, s in enumerate(["running", "pending", "pending"])]
    report_h5.write_index(run_dir, rows, ["sweep.seed"], seed_key="sweep.seed")  # the brief's spelling
    rc, out, err = run_main(run_dir, "--out", tmp_path / "rep")
    assert rc == 0, err
    assert "recomputed metrics agree for 0 experiments" in out
    for name in FIGURES:
        assert f"note: {name} skipped" in out
        assert not (tmp_path / "rep" / name).exists()
    cells = list(csv.DictReader(open(tmp_path / "rep" / "summary.csv")))
    assert len(cells) == 1 and cells[0]["n_seeds"] == "0" and cells[0]["n_pending"] == "2"


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def test_figures_are_valid_pngs_of_sensible_size(hand_report, report_h5):
    _, out, rc, stdout, _ = hand_report
    assert rc == 0
    for name in FIGURES:
        w, h = report_h5.png_size(out / name)
        assert 700 <= w <= 1000 and 350 <= h <= 1600, (name, w, h)
    # No gezo.local_epochs axis in this sweep: Figure 2b is skipped with a note, not an error.
    assert "note: figure2b_local_epochs.png skipped: gezo.local_epochs is not a sweep axis" in stdout
    assert not (out / "figure2b_local_epochs.png").exists()
    text = (out / "report.md").read_text()
    for name in FIGURES:
        assert f"]({name})" in text
    assert "figure2b_local_epochs.png: skipped" in text


def test_local_epochs_figure_and_stale_figure_removed(tmp_path, report_h5):
    h = report_h5
    run_dir = tmp_path / "run"
    rows = []
    for r, right in ((1, [True] * 8), (2, [i != 3 for i in range(8)])):
        for seed in (0, 1):
            eid = f"{r:08x}{seed:08x}"
            m = h.write_experiment(run_dir, eid, method="gezo", seed=seed, score=h.scores_for(right, h.LABEL),
                                   label=h.LABEL, sa=h.SA, queries=500 * r, examples=False)
            rows.append({"id": eid, "status": "complete", "method": "gezo", "seed": seed,
                         "axes": {"gezo.local_epochs": float(r)}, "metrics": m, "queries": 500 * r})
    h.write_index(run_dir, rows, ["gezo.local_epochs", "sweep.seed"], seed_key="sweep.seed")
    out = tmp_path / "rep"
    out.mkdir()
    (out / "figure2a_lambda.png").write_bytes(b"stale")
    rc, stdout, err = run_main(run_dir, "--out", out)
    assert rc == 0, err
    report_h5.png_size(out / "figure2b_local_epochs.png")
    report_h5.png_size(out / "noise_maps.png")  # files without /examples: noise only
    assert "no /examples" in stdout
    assert "note: figure2a_lambda.png skipped" in stdout
    assert not (out / "figure2a_lambda.png").exists()
    # The seed (here spelt sweep.seed) is aggregated: one row per local_epochs value.
    cells = list(csv.DictReader(open(out / "summary.csv")))
    assert [(c["gezo.local_epochs"], c["n_seeds"]) for c in cells] == [("1", "2"), ("2", "2")]
    assert "sweep.seed" not in cells[0]


def test_union_of_ablations_draws_one_series_per_method(tmp_path, report_h5):
    # Figure 2's config: grid (a) lambda for whitebox and gezo at R = 2, grid (b) R for gezo at
    # lambda = 0.01, and ERM. GeZO at lambda = 0.01 with R = 1 or 10 belongs to (b) only, and
    # GeZO at lambda = 0 or 0.1 to (a) only: neither is drawn as a one-point series.
    h = report_h5
    run_dir = tmp_path / "run"
    cells = [("none", 1e-3, 2), ("whitebox", 0.0, 2), ("whitebox", 0.01, 2), ("whitebox", 0.1, 2),
             ("gezo", 0.0, 2), ("gezo", 0.1, 2), ("gezo", 0.01, 1), ("gezo", 0.01, 2), ("gezo", 0.01, 10)]
    rows = []
    for i, (method, lam, r) in enumerate(cells):
        eid = f"{i:016x}"
        m = h.write_experiment(run_dir, eid, method=method, seed=0, examples=False, queries=100 * r,
                               score=h.scores_for([j != i % 8 for j in range(8)], h.LABEL), label=h.LABEL, sa=h.SA)
        rows.append({"id": eid, "status": "complete", "method": method, "seed": 0, "metrics": m,
                     "queries": 100 * r, "axes": {"dne.lambda": lam, "gezo.local_epochs": float(r)}})
    h.write_index(run_dir, rows, ["dne.method", "dne.lambda", "gezo.local_epochs", "sweep.seeds"])
    out = tmp_path / "rep"
    rc, stdout, err = run_main(run_dir, "--out", out, "--max-noise-rows", "3")
    assert rc == 0, err
    assert ("figure2a_lambda.png: single-value series from other ablations not drawn: "
            "gezo (local_epochs=1); gezo (local_epochs=10)") in stdout
    assert ("figure2b_local_epochs.png: single-value series from other ablations not drawn: "
            "gezo (lambda=0); gezo (lambda=0.1)") in stdout
    assert "3 of 7 method/lambda cells shown" in stdout
    for name in ("figure2a_lambda.png", "figure2b_local_epochs.png", "noise_maps.png"):
        report_h5.png_size(out / name)
    table = (out / "table.md").read_text()
    assert "| gezo | lambda=0.01, local_epochs=10 | 1 |" in table
    assert "| none | - | 1 |" in table  # lambda and local_epochs do not apply to ERM


def test_gaussian_smooth_and_normalise():
    flat = np.full((9, 9), 3.0)
    assert np.allclose(report_figures.gaussian_smooth(flat, 1.0), 3.0)
    impulse = np.zeros((15, 15))
    impulse[7, 7] = 1.0
    s = report_figures.gaussian_smooth(impulse, 1.0)
    assert s.sum() == pytest.approx(1.0) and s[7, 7] == s.max() < 1.0
    assert np.allclose(s, s.T) and np.allclose(s, s[::-1, ::-1])
    assert np.array_equal(report_figures.gaussian_smooth(impulse, 0), impulse)
    x = np.array([[-2.0, 1.0], [0.0, 0.5]])
    assert np.allclose(report_figures.normalise_noise(x, "signed"), x / 2)
    assert np.allclose(report_figures.normalise_noise(x, "minmax"), (x + 2) / 3)
    assert np.array_equal(report_figures.normalise_noise(np.zeros((2, 2)), "signed"), np.zeros((2, 2)))


def test_pareto_front():
    # (gap, accuracy): 4, 0 and 2 are on the front; 1 is dominated by 0, 3 by 2 (same gap, less accuracy).
    pts = [(0.1, 0.80), (0.2, 0.75), (0.3, 0.90), (0.3, 0.85), (0.05, 0.60)]
    assert sorted(report_figures.pareto_front(pts)) == [0, 2, 4]


# --------------------------------------------------------------------------------------------
# End to end with the dne binary
# --------------------------------------------------------------------------------------------

def test_end_to_end_tiny_sweep(tmp_path, dne_bin, report_h5):
    from dne_testing import SMALL, run_dne
    run_dir = tmp_path / "run"
    proc = run_dne(dne_bin, "run", "--config", REPO / "experiments" / "quickstart.toml", "--out", run_dir,
                   *SMALL, "--set", "dne.lambda=[0,0.01]", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "index.h5").is_file()
    out = tmp_path / "rep"
    rep = run_script(run_dir, "--out", out)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "recomputed metrics agree for 3 experiments" in rep.stdout
    for name in ("summary.csv", "table.md", "report.md"):
        assert (out / name).stat().st_size > 100, name
    for name in FIGURES:
        w, h = report_h5.png_size(out / name)
        assert 700 <= w <= 1000 and 350 <= h <= 1600, (name, w, h)
    assert "figure2b_local_epochs.png skipped" in rep.stdout  # no GeZO in the quickstart
    cells = read_summary(out / "summary.csv")
    assert {k[0] for k in cells} == {"none", "whitebox"} and len(cells) == 3
    assert all(c["n_seeds"] == "1" for c in cells.values())


def test_a_key_that_moves_with_the_axis_is_not_a_series():
    # The budget ablation scales lr with max_linf: lr belongs to the axis; lambda varies at a fixed
    # max_linf, so it makes series of its own.
    def cell(max_linf, lr, lam):
        return report.Cell(key=(), values={"dne.method": "whitebox", "dne.max_linf": max_linf,
                                           "dne.lr": lr, "dne.lambda": lam}, rows=[])
    cells = [cell(0.01, 0.0005, 0.001), cell(0.1, 0.005, 0.001), cell(0.1, 0.005, 1.0)]
    assert report_figures.moves_with(cells, "dne.lr", "dne.max_linf")
    assert not report_figures.moves_with(cells, "dne.lambda", "dne.max_linf")
    assert not report_figures.moves_with(cells, "dne.lr", "dne.lambda")  # lambda 0.001 has two lrs


def test_method_order_and_kinds_come_from_the_index(tmp_path, report_h5):
    # index.h5's /methods (dne writes it from its method table) decides the order, which methods
    # learn a noise and the trace axes; a method analysis has never heard of is just another row.
    write_index = report_h5.write_index
    rows = [{"id": f"{i:016x}", "status": "pending", "method": m, "seed": 0, "axes": {}}
            for i, m in enumerate(["none", "whitebox", "newmethod"])]
    write_index(tmp_path, rows, [])
    with h5py.File(tmp_path / "index.h5", "a") as f:
        table = [("newmethod", "zeroth_order", "queries"), ("none", "reference", ""), ("whitebox", "whitebox", "images")]
        for col, values in zip(("name", "kind", "trace_x"), zip(*table)):
            f.create_dataset(f"methods/{col}", data=np.array(values, dtype=object), dtype=h5py.string_dtype())
    # The table travels on the Index object (no module-level state): an index read later without
    # /methods gets the built-in table and leaves the first one as it was.
    index = report.read_index(tmp_path)
    assert index.methods.order() == ("newmethod", "none", "whitebox")
    assert index.methods.editing() == ("newmethod", "whitebox")
    assert index.methods.trace_axes() == {"newmethod": "queries", "whitebox": "images"}
    # an index without /methods (written before it existed) falls back to the built-in table
    older = tmp_path / "older"
    older.mkdir()
    write_index(older, rows, [])
    assert report.read_index(older).methods.order() == ("none", "random", "whitebox", "gezo", "rge", "spsa")
    assert index.methods.order() == ("newmethod", "none", "whitebox")
