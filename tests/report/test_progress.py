"""Tests of the queries-to-target curves: analysis/progress_curves.py, queries_to_target.png and
progress.md of analysis/report.py.

A run directory written by hand with h5py (conftest's builders) plus /progress groups with known
arrays (docs/results-format.md): three seeds per cell; "nes" (a method only the index's /methods
table names) with dne.noise_basis = dct (identical queries arrays) and pixel (one seed stopped
at another query count: interpolated), white-box (one seed without /progress) and ERM (no
/progress). The table's means, intervals and paired differences are computed by hand below.

Run: /usr/bin/python3 -m pytest -q tests/report
"""
import contextlib
import io
import math

import h5py
import numpy as np
import pytest

from analysis import progress_curves, report

T95_2DF = 4.303  # two-sided 95% Student t quantile, 2 degrees of freedom (three seeds)
METHODS = (("none", "reference", ""), ("whitebox", "whitebox", "images"), ("nes", "zeroth_order", "queries"))
CONTROL_VAL = {"val_sa_leakage_auc": 0.7, "val_eo_p": 0.2, "val_accuracy": 0.8, "val_auc": 0.85}


def val_curves(queries, eo_n, leak):
    """The /progress datasets of one experiment: val_eo_n and val_sa_leakage_auc as given, the rest
    simple functions of the queries."""
    q = np.asarray(queries, np.float64)
    return {"queries": q, "val_eo_n": np.asarray(eo_n, np.float64),
            "val_sa_leakage_auc": np.asarray(leak, np.float64), "val_eo_p": 0.3 - q / 2000,
            "val_accuracy": 0.8 + q / 10000, "val_auc": 0.85 + 0.0 * q, "val_frozen_sa_accuracy": 0.9 - q / 1000,
            "noise_l2": q / 100, "wall_s": q / 50}


Q4 = [0, 100, 200, 300]
# (id, method, noise_basis, seed, /progress or None, control_val_eo_n)
SWEEP = [
    ("0000000000000000", "none", "pixel", 0, None, None),
    ("0000000000000001", "none", "pixel", 1, None, None),
    ("0000000000000002", "none", "pixel", 2, None, None),
    # dct: same queries for every seed; final val_eo_n 0.10, 0.11, 0.12, control 0.30, 0.35, 0.31
    ("1000000000000000", "nes", "dct", 0, val_curves(Q4, [0.4, 0.3, 0.2, 0.10], [0.9, 0.8, 0.7, 0.60]), 0.30),
    ("1000000000000001", "nes", "dct", 1, val_curves(Q4, [0.4, 0.3, 0.2, 0.11], [0.9, 0.8, 0.7, 0.62]), 0.35),
    ("1000000000000002", "nes", "dct", 2, val_curves(Q4, [0.4, 0.3, 0.2, 0.12], [0.9, 0.8, 0.7, 0.64]), 0.31),
    # pixel: seed 1 measured at 0, 150, 250 (the others at 0, 100, 200, 300)
    ("2000000000000000", "nes", "pixel", 0, val_curves(Q4, [0.5, 0.4, 0.3, 0.2], [0.9] * 4), 0.4),
    ("2000000000000001", "nes", "pixel", 1, val_curves([0, 150, 250], [0.5, 0.2, 0.1], [0.9] * 3), 0.4),
    ("2000000000000002", "nes", "pixel", 2, val_curves(Q4, [0.5, 0.3, 0.2, 0.1], [0.9] * 4), 0.4),
    # white-box: the third seed ran without dne.eval_every (no /progress)
    ("3000000000000000", "whitebox", "pixel", 0, val_curves([0, 40, 80], [0.5, 0.2, 0.05], [0.9, 0.6, 0.5]), 0.3),
    ("3000000000000001", "whitebox", "pixel", 1, val_curves([0, 40, 80], [0.5, 0.2, 0.07], [0.9, 0.6, 0.5]), 0.3),
    ("3000000000000002", "whitebox", "pixel", 2, None, None),
]
AXES = ["dne.method", "dne.noise_basis", "sweep.seeds"]


def write_progress(path, series, control_eo_n, eval_every=100):
    with h5py.File(path, "a") as f:
        g = f.create_group("progress")
        for name, values in series.items():
            g.create_dataset(name, data=values)
        g.attrs["split"] = "val"
        g.attrs["eval_every"] = np.int64(eval_every)
        for name, value in {"val_eo_n": control_eo_n, **CONTROL_VAL}.items():
            g.attrs["control_" + name] = np.float64(value)


def build_progress_sweep(run_dir, h):
    rows = []
    for exp_id, method, basis, seed, series, control_eo_n in SWEEP:
        right = [i != seed for i in range(8)]
        queries = 0 if series is None else int(series["queries"][-1])
        m = h.write_experiment(run_dir, exp_id, method=method, seed=seed, score=h.scores_for(right, h.LABEL),
                               label=h.LABEL, sa=h.SA, queries=queries, examples=False, trace_steps=0)
        if series is not None:
            write_progress(run_dir / "experiments" / f"{exp_id}.h5", series, control_eo_n)
        rows.append({"id": exp_id, "status": "complete", "method": method, "seed": seed, "metrics": m,
                     "queries": queries, "axes": {"dne.noise_basis": basis}})
    h.write_index(run_dir, rows, AXES)
    # The method table and the noise basis's methods come from the index, as dne writes them.
    with h5py.File(run_dir / "index.h5", "a") as f:
        for col, values in zip(("name", "kind", "trace_x"), zip(*METHODS)):
            f.create_dataset(f"methods/{col}", data=np.array(values, dtype=object), dtype=h5py.string_dtype())
        del f["key_methods/dne.noise_basis"]
        f.create_dataset("key_methods/dne.noise_basis", data=np.array(["whitebox", "nes"], dtype=object),
                         dtype=h5py.string_dtype())
    return run_dir


def run_main(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = report.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def progress_report(tmp_path_factory, report_h5):
    run_dir = build_progress_sweep(tmp_path_factory.mktemp("progress") / "run", report_h5)
    out = run_dir / "rep"
    rc, stdout, stderr = run_main(run_dir, "--out", out)
    return run_dir, out, rc, stdout, stderr


def progress_rows(out):
    """progress.md's table as {(method, setting): {column: text}}."""
    lines = [ln for ln in (out / "progress.md").read_text().splitlines()
             if ln.startswith("|") and not ln.startswith("|---")]
    split = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return {tuple(r[:2]): dict(zip(split[0], r)) for r in split[1:]}


def by_hand(values):
    """mean, sample std and 95% t half-width of three values, written out."""
    mean = sum(values) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    return mean, sd, T95_2DF * sd / math.sqrt(3)


def test_figure_and_table_are_written(progress_report, report_h5):
    _, out, rc, stdout, stderr = progress_report
    assert rc == 0, stderr
    w, h = report_h5.png_size(out / "queries_to_target.png")
    assert 700 <= w <= 1000 and 350 <= h <= 1600, (w, h)
    text = (out / "report.md").read_text()
    assert "](queries_to_target.png)" in text and "## Progress on the validation split" in text
    assert "wrote" in stdout and "progress.md" in stdout.splitlines()[-1]
    # ERM has no /progress: no row; the cells that do are told apart by the noise basis
    assert set(progress_rows(out)) == {("whitebox", "noise_basis=pixel"), ("nes", "noise_basis=dct"),
                                       ("nes", "noise_basis=pixel")}


def test_table_final_values_and_paired_differences_by_hand(progress_report):
    _, out, _, _, _ = progress_report
    dct = progress_rows(out)[("nes", "noise_basis=dct")]
    assert dct["n"] == "3" and dct["queries"] == "300 ± 0"
    # final val_eo_n 0.10, 0.11, 0.12: mean 0.11, sd 0.01, half 4.303 * 0.01 / sqrt 3 = 0.0248
    mean, sd, half = by_hand([0.10, 0.11, 0.12])
    assert (mean, sd) == pytest.approx((0.11, 0.01))
    assert dct["val_eo_n (final)"] == "0.110 ± 0.010 [0.085, 0.135]"
    assert dct["val_eo_n: control"] == "0.320 ± 0.026 [0.254, 0.386]"  # 0.30, 0.35, 0.31
    # paired by seed: 0.10 - 0.30, 0.11 - 0.35, 0.12 - 0.31 = -0.20, -0.24, -0.19: mean -0.21,
    # sd sqrt(0.0007) = 0.0265, half 0.0657
    mean, sd, half = by_hand([-0.20, -0.24, -0.19])
    assert (mean, sd * sd) == pytest.approx((-0.21, 0.0007))
    assert dct["val_eo_n: − control"] == f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}] *" \
        == "-0.210 [-0.276, -0.144] *"
    # leakage: final 0.60, 0.62, 0.64 against a control of 0.7: -0.10, -0.08, -0.06
    assert dct["val_sa_leakage_auc (final)"] == "0.620 ± 0.020 [0.570, 0.670]"
    assert dct["val_sa_leakage_auc: − control"] == "-0.080 [-0.130, -0.030] *"
    # each seed's own final value, also where the seeds stopped at different queries
    pixel = progress_rows(out)[("nes", "noise_basis=pixel")]
    assert pixel["queries"] == "283 ± 29"            # 300, 250, 300: sd 50 / sqrt 3
    assert pixel["val_eo_n (final)"].startswith("0.133 ± 0.058 ")  # 0.2, 0.1, 0.1
    # white-box: the seed without /progress is left out (n = 2), one t-quantile of 1 df
    wb = progress_rows(out)[("whitebox", "noise_basis=pixel")]
    assert wb["n"] == "2" and wb["queries"] == "80 ± 0"
    assert wb["val_eo_n (final)"] == "0.060 ± 0.014 [-0.067, 0.187]"  # 0.05, 0.07; half 12.706 * 0.01
    assert wb["val_eo_n: − control"] == "-0.240 [-0.367, -0.113] *"  # -0.25, -0.23


def test_mismatched_queries_are_interpolated(progress_report):
    run_dir, _, _, stdout, _ = progress_report
    assert "queries_to_target.png: nes (noise_basis=pixel): the seeds' queries differ" in stdout
    index = report.read_index(run_dir)
    progress = progress_curves.cell_progress(report.make_cells(index), report.ExperimentFiles(index))
    cells = {(p.cell.method, p.cell.axis("dne.noise_basis")): p for p in progress}
    assert set(cells) == {("whitebox", "pixel"), ("nes", "dct"), ("nes", "pixel")}
    dct = cells[("nes", "dct")]
    assert dct.same and list(dct.grid) == [0, 100, 200, 300]
    pixel = cells[("nes", "pixel")]
    # the union of the seeds' points within the range all three cover (0..250)
    assert not pixel.same and list(pixel.grid) == [0, 100, 150, 200, 250]
    # seed 0 (0.5 0.4 0.3 0.2 at 0 100 200 300) at 150, 250: 0.35, 0.25; seed 1 (0.5 0.2 0.1 at 0 150
    # 250) at 100, 200: 0.3, 0.15; seed 2 (0.5 0.3 0.2 0.1) at 150, 250: 0.25, 0.15
    seeds = np.array([[0.5, 0.4, 0.35, 0.3, 0.25], [0.5, 0.3, 0.2, 0.15, 0.1], [0.5, 0.3, 0.25, 0.2, 0.15]])
    mean, half = pixel.curve("val_eo_n")
    assert mean == pytest.approx(seeds.mean(axis=0))
    assert half == pytest.approx(T95_2DF * seeds.std(axis=0, ddof=1) / math.sqrt(3))
    assert half[0] == 0  # every seed starts at 0.5 (noise = 0): no spread at queries 0
    # the whitebox cell: two seeds, identical grids
    wb = cells[("whitebox", "pixel")]
    assert wb.n == 2 and wb.same and list(wb.grid) == [0, 40, 80]


def test_common_grid():
    a, b = np.array([0.0, 10, 20]), np.array([0.0, 5, 15, 30])
    grid, same = progress_curves.common_grid([a, a.copy()])
    assert same and list(grid) == [0, 10, 20]
    grid, same = progress_curves.common_grid([a, b])
    assert not same and list(grid) == [0, 5, 10, 15, 20]  # 30 is past a's end
    assert list(progress_curves.on_grid(grid, b, b * 2)) == [0, 10, 20, 30, 40]


def test_without_progress_no_figure_no_table(tmp_path, report_h5):
    run_dir = report_h5.build_hand_sweep(tmp_path / "run")
    out = tmp_path / "rep"
    out.mkdir()
    for stale in ("queries_to_target.png", "progress.md"):
        (out / stale).write_bytes(b"stale")
    rc, stdout, stderr = run_main(run_dir, "--out", out)
    assert rc == 0, stderr
    assert "note: queries_to_target.png skipped: no complete experiment has /progress" in stdout
    assert "note: progress.md skipped" in stdout
    assert not (out / "queries_to_target.png").exists() and not (out / "progress.md").exists()
    text = (out / "report.md").read_text()
    assert "queries_to_target.png: skipped" in text and "## Progress on the validation split" not in text


def test_malformed_progress_exits_2_naming_the_file(tmp_path, report_h5):
    run_dir = build_progress_sweep(tmp_path / "run", report_h5)
    victim = run_dir / "experiments" / "1000000000000001.h5"
    with h5py.File(victim, "a") as f:
        del f["progress/val_eo_n"]
        f.create_dataset("progress/val_eo_n", data=np.zeros(2))
    rc, _, err = run_main(run_dir, "--out", tmp_path / "rep", "--no-figures")
    assert rc == 2
    assert str(victim) in err and "/progress/val_eo_n has 2 values" in err


def test_legend_labels_name_only_what_differs_within_a_method():
    from analysis import report_figures as F
    from analysis import sweep_index as S
    keys = ["dne.method", "dne.epochs", "dne.noise_basis", "dne.noise_dim", "dne.eval_every", "zo.candidates",
            "zo.sigma", "gezo.on_reject", "gezo.sigma_growth"]
    zo = {"dne.epochs": 100, "dne.eval_every": 10000, "zo.candidates": 16, "zo.sigma": 0.03,
          "gezo.on_reject": "keep", "gezo.sigma_growth": 1.0}

    def cell(method, basis, dim, **over):
        values = {"dne.method": method, **zo, "dne.noise_basis": basis, "dne.noise_dim": float(dim)}
        if method == "whitebox":
            values.update({"dne.epochs": 1, "dne.eval_every": 1000})
        values.update({(f"zo.{k}" if k in ("candidates", "sigma") else f"gezo.{k}"): v for k, v in over.items()})
        return report.Cell(key=(), values=values, rows=[])

    cells = [cell("whitebox", "dct", 8), cell("whitebox", "dct", 16), cell("whitebox", "lowres", 8),
             cell("whitebox", "pixel", 8),
             cell("gezo", "pixel", 8, candidates=4, sigma=0.05, on_reject="decay", sigma_growth=1.5),
             cell("gezo", "pixel", 8, candidates=4, sigma=0.05, on_reject="keep", sigma_growth=1.0),
             cell("rge", "dct", 8),
             cell("nes", "dct", 8), cell("nes", "dct", 16), cell("nes", "pixel", 8)]
    assert F.progress_labels(cells, keys, [1] * len(cells)) == [
        "whitebox dct 8", "whitebox dct 16", "whitebox lowres 8", "whitebox pixel",
        "gezo on_reject=decay sigma_growth=1.5", "gezo on_reject=keep sigma_growth=1",
        "rge",
        "nes dct 8", "nes dct 16", "nes pixel"]
    # n only when the cells differ in it
    assert F.progress_labels(cells[7:], keys, [3, 3, 2]) == ["nes dct 8, n=3", "nes dct 16, n=3", "nes pixel, n=2"]
    # the basis alone when the dimension is the same for the method's cells; sigma when it differs
    two = [cell("nes", "dct", 8), cell("nes", "pixel", 8, sigma=0.05)]
    assert F.progress_labels(two, keys) == ["nes dct sigma=0.03", "nes pixel sigma=0.05"]
    # the dimension with its basis when only it differs
    assert F.progress_labels([cell("spsa", "lowres", 4), cell("spsa", "lowres", 8)], keys) == \
        ["spsa lowres 4", "spsa lowres 8"]
    # pixel ignores noise_dim: cells that differ only in it are still told apart
    assert F.progress_labels([cell("nes", "pixel", 8), cell("nes", "pixel", 16)], keys) == \
        ["nes noise_dim=8", "nes noise_dim=16"]
    # a key that the method does not read (index.h5's /key_methods) is never named
    table = S.MethodTable(key_methods={"gezo.on_reject": ("gezo",)})
    odd = [cell("nes", "dct", 8, on_reject="decay"), cell("nes", "pixel", 8, on_reject="keep")]
    for c in odd:
        c.methods = table
    assert F.progress_labels(odd, keys) == ["nes dct", "nes pixel"]


def test_every_cell_has_its_own_colour_and_style():
    from analysis import report_figures as F
    from analysis import sweep_index as S
    table = S.MethodTable()
    methods = ["whitebox"] * 4 + ["gezo"] * 30 + ["new_a"] * 5 + ["new_b"] * 5 + ["new_c"] * 5
    styles = F.cell_styles(table, methods)
    assert len(set(styles)) == len(styles)
    assert {s[0] for s in styles[:4]} == {F.method_color(table, "whitebox")}  # a method keeps its colour
    assert len({s[1:] for s in styles[4:28]}) == 24  # 24 (line style, marker) pairs before shading


def test_query_axis_ticks():
    from analysis import report_figures as F
    # the pilot: first measurement 2,350, totals up to 60,000
    lin, major, minor, right = F.query_axis([2350, 4650, 11150, 59850], 60000)
    assert lin == 1000 and major == [0, 1000, 10000, 60000]
    assert [F.count_label(t) for t in major] == ["0", "1k", "10k", "60k"]
    assert 2000 in minor and 50000 in minor and right > 60000
    lin, major, _, _ = F.query_axis([500, 1000], 480000)
    assert lin == 100 and major == [0, 100, 1000, 10000, 100000, 500000]
    lin, major, _, _ = F.query_axis([40, 80, 100, 300], 300)  # the hand-built sweep
    assert lin == 10 and major == [0, 10, 100, 300]
    assert F.query_axis([], 0)[:2] == (1.0, [0.0])
