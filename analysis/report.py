#!/usr/bin/python3
"""Sweep report: tables, the DNE paper's figures and a metric cross-check for one run directory.

Usage: /usr/bin/python3 analysis/report.py RUN_DIR [--out REPORT_DIR] [options]

Reads RUN_DIR/index.h5 (the sweep index written by `dne run`) and the experiment files
RUN_DIR/experiments/<id>.h5 of its complete rows, and writes into REPORT_DIR (default
RUN_DIR/report):

  summary.csv                one row per sweep cell (axis values except the seed): n complete
                             seeds, mean and sample std over seeds of every metric, queries, wall_s
  table.md                   Table-1 style comparison, one row per method (and per cell)
  figure2a_lambda.png        gaps and accuracy against dne.lambda, one line per method, ERM band
  figure2b_local_epochs.png  the same against gezo.local_epochs for GeZO
  figure2c_budget.png        the same against the noise budget dne.max_linf
  noise_maps.png             smoothed learned noise beside example images of each (sa, label) group
  pareto.png                 accuracy against a fairness gap for every complete experiment
  convergence.png            objective loss and frozen SA accuracy against queries (traces)
  queries_to_target.png      validation gaps, leakage and accuracy against queries (/progress)
  progress.md                per cell the final validation values beside the control (/progress)
  report.md                  links everything, lists pending/running/failed experiments

Every complete experiment's accuracy, AUC and fairness gaps are recomputed from /test/* with the
independent NumPy implementation in dne_metrics.py and compared with its /metrics (and with the
index's copy). Exit status: 0 on success, 2 for unreadable input (one line naming the file),
3 when a stored metric disagrees with the recomputation (the report is still written).
The index model (rows, sweep cells, per-cell statistics) is analysis/sweep_index.py, which
analysis/summarize.py shares: both give the same n, mean and std per cell. See docs/analysis.md.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from pathlib import Path

import h5py
import numpy as np

try:  # imported as part of the `analysis` package
    from . import check_metrics, dne_metrics, progress_curves
    from .stats import format_difference
    from .sweep_index import (
        STATUSES, SEED_KEYS, Cell, Index, InputError, Row, attr_float, first_line, fmt_value, h5_text,  # noqa: F401
        make_cells, markdown_stat, open_h5, paired_differences, read_index, sorted_cells, varying_keys)
except ImportError:  # run as a script, or imported with analysis/ on sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import check_metrics
    import dne_metrics
    import progress_curves
    from stats import format_difference
    from sweep_index import (
        STATUSES, SEED_KEYS, Cell, Index, InputError, Row, attr_float, first_line, fmt_value, h5_text,  # noqa: F401
        make_cells, markdown_stat, open_h5, paired_differences, read_index, sorted_cells, varying_keys)

# The index/row model (read_index, Row, Index, Cell with its statistics, the method table, paired
# differences) lives in sweep_index.py, shared with report_figures.py and summarize.py; Cell,
# read_index and InputError stay importable from here.

GAPS = ("eo_n", "eo_p", "di", "tpr_gap", "fpr_gap", "equalized_odds", "dp_gap")
TABLE_COLUMNS = ("accuracy", "auc", "eo_n", "eo_p", "di", "sa_leakage_auc", "frozen_sa_accuracy",
                 "queries")
HIGHER_BETTER = {"accuracy", "auc"}
LOWER_BETTER = {"eo_n", "eo_p", "di"}

FIGURES = ("figure2a_lambda.png", "figure2b_local_epochs.png", "figure2c_budget.png", "noise_maps.png",
           "pareto.png", "convergence.png", "leakage_auc.png", "poisoning.png", "queries_to_target.png")


# ---------------------------------------------------------------------------------------------
# Experiment files
# ---------------------------------------------------------------------------------------------

class ExperimentFiles:
    """Lazy, cached access to the experiment files of complete rows."""

    def __init__(self, index: Index):
        self.index = index
        self._cache: dict = {}

    def path(self, row: Row) -> Path:
        return self.index.file_path(row)

    def _read(self, row: Row, what: str, reader):
        key = (row.id, what)
        if key not in self._cache:
            path = self.path(row)
            f = open_h5(path, "experiment file")
            try:
                with f:
                    self._cache[key] = reader(f)
            except InputError:
                raise
            except (OSError, KeyError, ValueError, TypeError) as e:
                raise InputError(f"{path}: cannot read {what} ({first_line(e)})") from None
        return self._cache[key]

    def test_data(self, row: Row) -> dict:
        def reader(f):
            out = {"id": h5_text(f.attrs.get("id", "")),
                   "metrics": {k: np.asarray(v) for k, v in f["metrics"].attrs.items()}
                   if isinstance(f.get("metrics"), h5py.Group) else None,
                   "queries": attr_float(f["provenance"].attrs, "queries")
                   if isinstance(f.get("provenance"), h5py.Group) else math.nan}
            for name in ("score", "label", "sa"):
                ds = f.get(f"test/{name}")
                if not isinstance(ds, h5py.Dataset):
                    raise InputError(f"{self.path(row)}: missing dataset /test/{name}")
                out[name] = ds[()]
            return out
        return self._read(row, "/test and /metrics", reader)

    def noise(self, row: Row):
        """(noise (H, W) or None, examples dict or None)."""
        def reader(f):
            noise = f["noise"][()].astype(np.float64) if isinstance(f.get("noise"), h5py.Dataset) else None
            ex = None
            g = f.get("examples")
            if isinstance(g, h5py.Group) and isinstance(g.get("images"), h5py.Dataset):
                ex = {"images": g["images"][()].astype(np.float64),
                      "sa": g["sa"][()] if "sa" in g else np.array([0, 0, 1, 1]),
                      "label": g["label"][()] if "label" in g else np.array([0, 1, 0, 1])}
            return noise, ex
        return self._read(row, "/noise and /examples", reader)

    def trace(self, row: Row) -> dict:
        def reader(f):
            g = f.get("trace")
            if not isinstance(g, h5py.Group):
                return {}
            return {k: np.asarray(v[()], dtype=np.float64).ravel() for k, v in g.items()
                    if isinstance(v, h5py.Dataset)}
        return self._read(row, "/trace", reader)

    def progress(self, row: Row):
        """The file's /progress (progress_curves.Progress), or None without one."""
        return self._read(row, "/progress", progress_curves.read_progress)


# ---------------------------------------------------------------------------------------------
# Recomputation check
# ---------------------------------------------------------------------------------------------

def recompute(index: Index, files: ExperimentFiles, tol: float):
    """Recompute every complete experiment's classification metrics from /test/*.

    Returns (number of experiments that agree, list of problem lines). A problem is a metric
    that differs from the file's /metrics, a required metric missing from /metrics, or the
    index's copy of a metric (or the id, or queries) differing from the file.
    """
    n_ok, problems = 0, []
    for row in index.complete_rows():
        data = files.test_data(row)
        rel = os.path.relpath(files.path(row), index.run_dir)
        try:
            want = dne_metrics.classification_metrics(data["score"], data["label"], data["sa"])
        except ValueError as e:
            raise InputError(f"{files.path(row)}: bad /test data ({e})") from None
        stored = data["metrics"]
        bad = []
        if stored is None:
            bad.append(f"MISMATCH {rel}: no /metrics group")
            stored = {}
        bad += check_metrics.compare_metrics(want, stored, rel, tol)[0]
        # The index's copies must be the file's values.
        if data["id"] and data["id"] != row.id:
            bad.append(f"MISMATCH {rel}: root id {data['id']!r} but index.h5 row says {row.id!r}")
        for name, value in row.metrics.items():
            if name in stored:
                try:
                    got = check_metrics.scalar(stored[name])
                except (TypeError, ValueError):
                    continue
                if not check_metrics.agree(value, got, tol):
                    bad.append(f"MISMATCH {rel}: metric {name} in index.h5 is {value!r}, file has {got!r}")
        if not math.isnan(data["queries"]) and not math.isnan(row.queries) and data["queries"] != row.queries:
            bad.append(f"MISMATCH {rel}: queries in index.h5 is {row.queries:g}, file has {data['queries']:g}")
        if bad:
            problems.extend(bad)
        else:
            n_ok += 1
    return n_ok, problems


# ---------------------------------------------------------------------------------------------
# Outputs: summary.csv, table.md
# ---------------------------------------------------------------------------------------------

def _num(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.10g}"


def write_summary_csv(path: Path, index: Index, cells) -> list:
    names = index.metric_names + ["queries", "wall_s"]
    header = ([k for k in index.cell_keys] + ["n_seeds", "n_failed", "n_running", "n_pending", "seeds"]
              + [f"{m}_{s}" for m in names for s in ("mean", "std")])
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for c in cells:
            line = [fmt_value(c.values[k]) for k in index.cell_keys]
            line += [len(c.complete), c.count("failed"), c.count("running"), c.count("pending"),
                     " ".join(str(r.seed) for r in c.complete)]
            for m in names:
                stat = c.stats(m)
                line += [_num(stat.mean), _num(stat.std)]
            w.writerow(line)
    return header


def choose_table_cells(cells, mode: str, gap: str) -> list:
    if mode == "all":
        return cells
    best = {}
    for c in cells:
        if not c.complete:
            continue
        g, acc = c.stats(gap).mean, c.stats("accuracy").mean
        score = (math.inf if math.isnan(g) else g, -acc if not math.isnan(acc) else math.inf)
        if c.method not in best or score < best[c.method][0]:
            best[c.method] = (score, c)
    return [c for c in cells if c.method in best and best[c.method][1] is c]


def table_markdown(index: Index, cells, mode: str, gap: str) -> str:
    chosen = sorted_cells(choose_table_cells(cells, mode, gap))
    by_method: dict = {}
    for c in chosen:
        by_method.setdefault(c.method, []).append(c)
    # The setting column names the axis values that tell cells apart (over all cells, so that
    # --table-cells best still says which cell was kept).
    setting_keys = varying_keys(cells, index.cell_keys)
    multi = any(len(v) > 1 for v in by_method.values())
    arrows = {m: (" ↑" if m in HIGHER_BETTER else " ↓" if m in LOWER_BETTER else "") for m in TABLE_COLUMNS}
    head = ["method"] + (["setting"] if multi or setting_keys else []) + ["n"] + [m + arrows[m] for m in TABLE_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    best_value = {}
    for m in TABLE_COLUMNS:
        means = [c.stats(m).mean for c in chosen if c.complete]
        means = [v for v in means if not math.isnan(v)]
        if means and m in HIGHER_BETTER:
            best_value[m] = max(means)
        elif means and m in LOWER_BETTER:
            best_value[m] = min(means)
    for c in chosen:
        n = len(c.complete)
        row = [c.method]
        if multi or setting_keys:
            row.append(c.label(setting_keys) or "-")
        other = [f"{c.count(s)} {s}" for s in ("failed", "running", "pending") if c.count(s)]
        row.append(str(n) + (f" ({', '.join(other)})" if other else ""))
        for m in TABLE_COLUMNS:
            stat = c.stats(m)
            text = markdown_stat(stat, m)
            if m in best_value and n and not math.isnan(stat.mean) and stat.mean == best_value[m] and len(chosen) > 1:
                text = f"**{text}**"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
        if c.method != "none" and any(math.isfinite(r.value("control_accuracy")) for r in c.complete):
            # The experiment's own control (norm-matched noise, or the VAE without its adversary).
            crow = ["↳ control"] + ([""] if multi or setting_keys else []) + [str(n)]
            for m in TABLE_COLUMNS:
                crow.append("" if m == "queries" else markdown_stat(c.stats("control_" + m), m))
            lines.append("| " + " | ".join(crow) + " |")
    notes = [
        "Mean ± sample standard deviation [95% t-interval] over the n complete seeds of each cell (no ± "
        "when n = 1; — when no seed is complete; n/a where a metric does not apply, e.g. the frozen probe g "
        "on the VAE's latent code). ↳ control: the same experiments' own control through the same pipeline: "
        "for a noise method, norm-matched random noise (the learned noise's L2 norm, inside its L-inf "
        "budget); for the VAE, the same VAE trained without the adversary (what the bottleneck alone "
        "removes). ↑ higher is better, ↓ lower is better; bold marks the best "
        "mean of a column. Gaps are absolute differences of fractions (0-1); di = |1 - acc(a1,y1) / "
        "acc(a0,y1)|. sa_leakage_auc: a fresh SA probe on the debiased embeddings (0.5 = the attribute "
        "is not recoverable); frozen_sa_accuracy: the frozen SA probe g (0.5 = chance). queries: images "
        "sent to the FM (forward+backward passes for whitebox, 0 for none/random).",
    ]
    if mode == "best":
        notes.append(f"One cell per method: the one with the lowest mean {gap} (--table-cells best).")
    paired = paired_markdown(index, chosen, setting_keys, multi)
    if paired:
        notes.append(paired)
    if any(not c.applies(k) for c in chosen for k in setting_keys):
        notes.append("Settings that do not apply to a method (for example lambda for ERM) are left out of its label.")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


PAIRED_METRICS = ("accuracy", "eo_n", "eo_p", "sa_leakage_auc")


def paired_markdown(index: Index, chosen, setting_keys, multi) -> str:
    """The paired-by-seed differences DNE - control and DNE - ERM of every noise cell."""
    noisy = [c for c in chosen if c.method != "none" and c.complete]
    if not noisy:
        return ""
    head = ["method"] + (["setting"] if multi or setting_keys else []) + ["n"]
    head += [f"{m}: − control" for m in PAIRED_METRICS] + [f"{m}: − ERM" for m in PAIRED_METRICS]
    lines = ["Paired by seed: the method minus its own control (above), and minus ERM of the "
             "same seed; mean [95% t-interval] over seeds, * = the interval excludes 0.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in noisy:
        row = [c.method] + ([c.label(setting_keys) or "-"] if multi or setting_keys else []) + [str(len(c.complete))]
        pairs = [paired_differences(index, c, m) for m in PAIRED_METRICS]
        row += [format_difference(p[0]) for p in pairs] + [format_difference(p[1]) for p in pairs]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def axis_label(row: Row, keys) -> str:
    return ", ".join(f"{k}={fmt_value(row.axes.get(k, ''))}" for k in keys)


def listing_keys(index: Index) -> list:
    """Keys that describe a row in the lists of experiments: the axes, else method and seed."""
    return list(index.axes) or ["dne.method"] + [k for k in SEED_KEYS if k in index.axis_keys][:1]


def not_complete_lines(index: Index) -> list:
    keys = listing_keys(index)
    out = []
    for r in index.rows:
        if r.complete:
            continue
        line = f"{r.id}  {r.status:<8}  {axis_label(r, keys)}"
        if r.error:
            line += f"  error: {r.error}"
        out.append(line)
    return out


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="report.py",
        description="Write summary.csv, table.md, the paper's figures and report.md for a dne sweep "
                    "(RUN_DIR/index.h5 + RUN_DIR/experiments/*.h5), and cross-check every "
                    "complete experiment's metrics against an independent recomputation.")
    ap.add_argument("run_dir", metavar="RUN_DIR", help="the sweep's output directory (holds index.h5)")
    ap.add_argument("--out", metavar="REPORT_DIR", help="where to write the report (default RUN_DIR/report)")
    ap.add_argument("--gap", default="eo_p", choices=GAPS,
                    help="fairness gap for pareto.png and --table-cells best (default eo_p)")
    ap.add_argument("--table-cells", choices=("all", "best"), default="all",
                    help="table.md rows: every cell of every method (default), or per method the cell "
                         "with the lowest mean --gap")
    ap.add_argument("--noise-ids", metavar="ID[,ID...]",
                    help="experiment ids for noise_maps.png (default: first complete seed of each "
                         "method/lambda)")
    ap.add_argument("--noise-sigma", type=float, default=1.0, metavar="PX",
                    help="Gaussian smoothing of the noise maps in pixels, 0 = none (default 1.0)")
    ap.add_argument("--noise-norm", choices=("signed", "minmax"), default="signed",
                    help="noise maps scaled to [-1, 1] by max |eps| (signed, default) or to [0, 1] (minmax)")
    ap.add_argument("--max-noise-rows", type=int, default=8, metavar="N",
                    help="at most N noise-map rows (default 8)")
    ap.add_argument("--convergence-cells", choices=("first", "all"), default="first",
                    help="convergence.png: one curve per method (its first cell in table order, "
                         "i.e. the lowest axis values; default) or one per cell")
    ap.add_argument("--max-lines", type=int, default=12, metavar="N",
                    help="at most N curves in convergence.png (default 12)")
    ap.add_argument("--tol", type=float, default=1e-6,
                    help="recomputation tolerance, relative to max(1, |value|) (default 1e-6)")
    ap.add_argument("--dpi", type=int, default=110, help="figure resolution (default 110: 880 px wide)")
    ap.add_argument("--no-figures", action="store_true", help="write only the CSV, table and report.md")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except InputError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir / "report"
    index = read_index(run_dir)
    files = ExperimentFiles(index)

    counts = {s: sum(r.status == s for r in index.rows) for s in STATUSES}
    finished = index.attrs.get("finished", 1)
    print(f"{index.path}: {len(index.rows)} experiments: "
          + ", ".join(f"{counts[s]} {s}" for s in STATUSES)
          + ("" if finished else " (the sweep has not finished)"))
    pending = not_complete_lines(index)
    if pending:
        print("not complete:")
        for line in pending:
            print("  " + line)

    n_ok, problems = recompute(index, files, args.tol)
    agree_line = f"recomputed metrics agree for {n_ok} experiments"
    print(agree_line)
    if problems:
        n_bad = len(index.complete_rows()) - n_ok
        print(f"recomputed metrics DISAGREE for {n_bad} experiments:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out}: cannot create the report directory ({e.strerror})") from None

    cells = make_cells(index)
    written = []
    try:
        write_summary_csv(out / "summary.csv", index, cells)
        written.append("summary.csv")
        table = table_markdown(index, cells, args.table_cells, args.gap)
        (out / "table.md").write_text(table)
        written.append("table.md")
        progress = write_progress_md(out / "progress.md", index, cells, files)
        if progress:
            written.append("progress.md")
    except OSError as e:
        raise InputError(f"{out}: cannot write ({e.strerror or e})") from None

    figure_status = {}
    if not args.no_figures:
        try:
            from . import report_figures
        except ImportError:
            import report_figures
        figure_status = report_figures.draw_all(index, files, cells, out, args)
        for name in FIGURES:
            status = figure_status.get(name, "skipped: not drawn")
            if status == "ok":
                written.append(name)
            else:
                print(f"note: {name} {status}")
                stale = out / name
                if stale.exists():
                    stale.unlink()

    report = report_markdown(index, cells, table, progress, agree_line, problems, pending, figure_status,
                             args, counts, finished)
    try:
        (out / "report.md").write_text(report)
    except OSError as e:
        raise InputError(f"{out / 'report.md'}: cannot write ({e.strerror or e})") from None
    written.append("report.md")
    print(f"wrote {out}/: " + ", ".join(written))
    return 3 if problems else 0


def write_progress_md(path: Path, index: Index, cells, files) -> str:
    """progress.md when a complete experiment has /progress (its text), else "" and no file (an
    old copy is removed)."""
    progress = progress_curves.cell_progress(cells, files)
    if not progress:
        print(f"note: {path.name} skipped: no complete experiment has /progress (dne.eval_every = 0)")
        path.unlink(missing_ok=True)
        return ""
    text = progress_curves.progress_markdown(index, progress)
    path.write_text(text)
    return text


def report_markdown(index, cells, table, progress, agree_line, problems, pending, figure_status, args,
                    counts, finished) -> str:
    a = index.attrs
    lines = [f"# Sweep report: {index.run_dir}", ""]
    lines.append(f"- index: `{index.path}` (config `{a.get('config_origin', '?')}`, updated {a.get('updated', '?')}, "
                 f"{'finished' if finished else '**sweep not finished**'})")
    lines.append(f"- experiments: {len(index.rows)} — " + ", ".join(f"{counts[s]} {s}" for s in STATUSES))
    lines.append(f"- axes: {', '.join(index.axes) if index.axes else '(none)'}")
    elapsed = a.get("elapsed_s")
    lines.append(f"- ranks: world size {a.get('world_size', '?')}, {a.get('ranks_per_experiment', '?')} per "
                 f"experiment, {a.get('groups', '?')} groups"
                 + (f"; run time {elapsed:.0f} s" if isinstance(elapsed, (int, float)) else ""))
    lines.append(f"- check: {agree_line} (accuracy, AUC and gaps recomputed from /test/* with "
                 f"analysis/dne_metrics.py, tolerance {args.tol:g})")
    if problems:
        lines += ["", "## Metric disagreements", "", "```"] + problems + ["```"]
    lines += ["", "## Table", "", table.rstrip(), "", "Per-cell numbers: [summary.csv](summary.csv)."]
    if progress:
        lines += ["", "## Progress on the validation split", "", progress.rstrip(), "",
                  "The same table: [progress.md](progress.md)."]
    if not args.no_figures:
        captions = {
            "figure2a_lambda.png": "Effect of lambda (weight of ||eps||_2) on the fairness gaps and accuracy.",
            "figure2b_local_epochs.png": "Effect of GeZO's local epochs R.",
            "figure2c_budget.png": "Effect of the noise budget dne.max_linf, each method beside its norm-matched random control.",
            "noise_maps.png": "Learned noise (smoothed, scaled) and example images of each (sa, label) group.",
            "pareto.png": f"Accuracy against {args.gap} for every complete experiment; the Pareto front is marked.",
            "convergence.png": "Objective loss and frozen SA probe accuracy against queries.",
            "leakage_auc.png": "What each method removes and what it keeps: a fresh probe's SA AUC on the debiased "
                               "embeddings against the disease AUC, each cell's mean and 95% intervals over seeds, "
                               "beside its own control (hollow).",
            "poisoning.png": "The label-poisoning attack: accuracy, gaps and leakage against data.poison_rate (the share "
                             "of one group's training labels flipped), every method with its control.",
            "queries_to_target.png": "Queries to target: validation eo_n, SA leakage AUC, eo_p and accuracy of the noise "
                                     "as the editor spends queries (/progress), mean and 95% t-band over seeds per "
                                     "cell; every curve starts at queries 0 with noise = 0 (ERM). x: the cell's "
                                     "norm-matched random control at its final budget; dashed: each white-box "
                                     "cell's final value.",
        }
        lines += ["", "## Figures", ""]
        for name in FIGURES:
            status = figure_status.get(name, "skipped: not drawn")
            if status == "ok":
                lines += [f"### {name}", "", captions[name], "", f"![{name}]({name})", ""]
            else:
                lines += [f"- {name}: {status}", ""]
    lines += ["## Experiments not complete", ""]
    if pending:
        keys = listing_keys(index)
        lines += ["| id | status | " + " | ".join(keys) + " | error |", "|" + "---|" * (len(keys) + 3)]
        for r in index.rows:
            if not r.complete:
                err = r.error.replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {r.id} | {r.status} | "
                             + " | ".join(fmt_value(r.axes.get(k, "")) for k in keys) + f" | {err} |")
        lines.append("")
        lines.append("Cells aggregate only their complete seeds (n in the table and summary.csv).")
    else:
        lines.append("None: every experiment is complete.")
    stopped = [r for r in index.complete_rows() if r.editor_status and r.editor_status != "complete"]
    if stopped:
        lines += ["", "## Editors that stopped early", ""]
        lines += [f"- {r.id} ({r.method}, seed {r.seed}): {r.editor_status}" for r in stopped]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
