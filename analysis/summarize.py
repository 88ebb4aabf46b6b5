#!/usr/bin/python3
"""Print a table of headline metrics for every complete experiment of a sweep run directory.

Usage: /usr/bin/python3 analysis/summarize.py RUN_DIR [--group]

Reads RUN_DIR/index.h5 (docs/results-format.md) through analysis/sweep_index.py, the model that
analysis/report.py uses: the experiments are the index's complete rows (files in
RUN_DIR/experiments that the index does not list as complete are ignored; the file the index
names for each complete row must exist), and their values are the index's copies of each file's
/metrics, /control/metrics and queries. The first columns are the sweep cell's keys (the method
and the axes except the seed, as in report.py's summary.csv), then the seed.

One row per complete experiment, with the accuracy, eo_p and sa_leakage_auc of its norm-matched
random control (ctl:*, NaN for ERM); with --group, one row per sweep cell with the number of
complete seeds and mean ± sample standard deviation [95% t-interval] over them, as a Markdown
table (the same numbers and notation as report.py's summary.csv and table.md: the mean alone when
n = 1, n/a when a seed's value is NaN, — when no seed is complete), followed by the paired
differences of every noise cell: DNE - control (the experiment's own control) and DNE - ERM (the
`dne.method = "none"` experiment of the same seed whose every key that ERM reads agrees), each as
mean [95% t-interval] over seeds. An interval that excludes 0 is marked *.

With --group --conclude, a last section says in one line per noise cell and gap (eo_p, eo_n,
sa_leakage_auc; lower is better) what a reader should conclude: worse than (or no better than)
ERM; better than ERM and than its random control; or better than ERM but not than its control
(the noise's size, not DNE). "Shown" means the 95% interval excludes 0.

Exit status: 0; 1 when no experiment is complete yet; 2 for unreadable input (RUN_DIR or
index.h5 missing or malformed, the file of a complete row missing), one line on stderr.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

try:  # imported as part of the `analysis` package
    from .stats import format_difference, interval
    from .sweep_index import (InputError, fmt_value, make_cells, markdown_stat, paired_differences,
                              read_index, sorted_cells)
except ImportError:  # run as a script, or imported with analysis/ on sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from stats import format_difference, interval
    from sweep_index import (InputError, fmt_value, make_cells, markdown_stat, paired_differences,
                             read_index, sorted_cells)

PAIRED = ["accuracy", "auc", "eo_n", "eo_p", "di", "sa_leakage_auc"]
COLUMNS = ["accuracy", "auc", "eo_n", "eo_p", "di", "sa_leakage_auc", "frozen_sa_accuracy", "noise_l2", "queries"]
# Per-experiment rows also show these metrics of the experiment's norm-matched random control.
CONTROL_COLUMNS = ["accuracy", "eo_p", "sa_leakage_auc"]


def load(run_dir):
    """(index, its cells in table order) of RUN_DIR; InputError when index.h5 is unreadable or
    the file of a complete row is missing."""
    index = read_index(Path(run_dir))
    for r in index.complete_rows():
        path = index.file_path(r)
        if not path.is_file():
            raise InputError(f"{path}: experiment file of complete row {r.id} not found")
    return index, sorted_cells(make_cells(index))


def shown(method, key, value):
    """A cell key's value as the tables show it: '—' for the noise keys ERM does not read (its
    dne.objective, dne.adversary, ... are collapsed defaults, not settings)."""
    if method == "none" and key != "dne.method" and key.split(".")[0] in ("dne", "gezo", "zo", "nes"):
        return "—"
    return fmt_value(value)


def group_table(index, cells):
    """One Markdown row per sweep cell: its keys, n complete seeds, markdown_stat of every column."""
    keys = index.cell_keys
    print("| " + " | ".join(keys + ["seeds"] + COLUMNS) + " |")
    print("|" + "---|" * (len(keys) + 1 + len(COLUMNS)))
    for c in cells:
        stats = [markdown_stat(c.stats(m), m) for m in COLUMNS]
        print("| " + " | ".join([fmt_value(c.values[k]) for k in keys] + [str(len(c.complete))] + stats) + " |")
    noise_keys = [k for k in keys if shown("none", k, None) == "—"]
    if noise_keys and any(c.method == "none" for c in cells):
        print(f"(ERM reads none of {', '.join(noise_keys)}: its values there are the defaults, not settings)")


def paired_table(index, cells):
    """Markdown table of DNE - control and DNE - ERM per noise cell (nothing if there is none)."""
    noisy = [c for c in cells if c.method != "none" and c.complete]
    if not noisy:
        return
    print()
    print("Paired differences, mean [95% t-interval] over seeds; * = the interval excludes 0:")
    print()
    keys = index.cell_keys
    head = keys + ["seeds"] + [f"{m}: DNE - control" for m in PAIRED] + [f"{m}: DNE - ERM" for m in PAIRED]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for c in noisy:
        pairs = [paired_differences(index, c, m) for m in PAIRED]
        cols = [format_difference(p[0]) for p in pairs] + [format_difference(p[1]) for p in pairs]
        print("| " + " | ".join([fmt_value(c.values[k]) for k in keys] + [str(len(c.complete))] + cols) + " |")


def verdict(control, erm, metric):
    """One conclusion from the paired differences of `metric` (lower is better: a fairness gap or
    the leakage AUC): DNE - its control and DNE - ERM, lists over seeds. A difference counts as
    shown when its 95% interval excludes 0."""
    def sign(values):
        mean, _, half = interval(values)
        if math.isnan(mean):
            return 0, False
        return (-1 if mean < 0 else 1), (not math.isnan(half) and abs(mean) > half)
    (to_ctl, ctl_sure), (to_erm, erm_sure) = sign(control), sign(erm)
    better = "a fresh probe reads sex less well" if metric == "sa_leakage_auc" else "the gap is smaller"
    worse = "a fresh probe reads sex better" if metric == "sa_leakage_auc" else "the gap is wider"
    if to_erm > 0:
        return (f"worse than ERM: {worse} (shown)" if erm_sure
                else f"no better than ERM ({worse} in the mean; the interval includes 0)")
    if to_ctl < 0:
        if ctl_sure and erm_sure:
            return f"better than ERM and than random noise of the same norm: {better} (both shown)"
        return (f"better than ERM and than random noise of the same norm in the mean ({better}); "
                "an interval includes 0: more seeds would tell")
    return (f"better than ERM in the mean, but no better than random noise of the same norm: "
            "the noise's size does it, not what DNE learned")


def verdict_lines(index, cells, metrics=("eo_p", "eo_n", "sa_leakage_auc")):
    """What a reader should conclude, one line per noise cell, from the paired differences of
    each fairness gap against ERM and against the cell's own random control."""
    noisy = [c for c in cells if c.method != "none" and c.complete]
    if not noisy:
        return
    keys = index.cell_keys
    print()
    print("What to conclude (lower eo_p / eo_n = smaller gap between the sexes; lower sa_leakage_auc = "
          "a fresh probe reads sex less well); mean [95% t-interval] over seeds, paired by seed:")
    for c in noisy:
        name = ", ".join(fmt_value(c.values[k]) for k in keys)
        _, acc_erm = paired_differences(index, c, "accuracy")
        print(f"- {name} ({len(c.complete)} seed(s)); accuracy vs ERM {format_difference(acc_erm)}:")
        for m in metrics:
            control, erm = paired_differences(index, c, m)
            print(f"    {m}: vs ERM {format_difference(erm)}, vs its control {format_difference(control)}: "
                  f"{verdict(control, erm, m)}")


def experiment_table(index, cells):
    """One line per complete experiment, in table order (cells, then seeds)."""
    keys = index.cell_keys
    control_heads = [f"ctl:{c[:8]}" for c in CONTROL_COLUMNS]
    print("  ".join([f"{a:>16}" for a in keys + [index.seed_key]]
                    + [f"{c[:12]:>12}" for c in COLUMNS + control_heads] + ["status"]))
    rows = [r for c in cells for r in sorted(c.complete, key=lambda r: (r.seed, r.index))]
    for r in rows:
        print("  ".join([f"{shown(r.method, k, r.axes.get(k, r.method if k == 'dne.method' else '')):>16}" for k in keys]
                        + [f"{r.seed:>16}"]
                        + [f"{r.value(c):>12.{0 if c == 'queries' else 3}f}" for c in COLUMNS]
                        + [f"{r.value('control_' + c):>12.3f}" for c in CONTROL_COLUMNS]
                        + [r.editor_status]))
    if any(math.isfinite(r.value("control_" + c)) for r in rows for c in CONTROL_COLUMNS):
        print("(ctl: the experiment's norm-matched random control, same L2 norm, same pipeline; "
              "--group gives intervals over seeds and paired differences)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", metavar="RUN_DIR", help="the sweep's output directory (holds index.h5)")
    ap.add_argument("--group", action="store_true", help="mean ± std [95%% t-interval] over seeds per cell, Markdown")
    ap.add_argument("--conclude", action="store_true",
                    help="with --group: one line per noise cell and fairness gap saying what to conclude "
                         "against ERM and against the cell's own random control")
    args = ap.parse_args(argv)
    try:
        index, cells = load(args.run_dir)
    except InputError as e:
        print(f"summarize: error: {e}", file=sys.stderr)
        return 2
    counts = index.counts()
    if not counts["complete"]:
        print(f"summarize: no complete experiment in {index.path} ("
              + ", ".join(f"{counts[s]} {s}" for s in counts if counts[s]) + ")", file=sys.stderr)
        return 1
    if args.group:
        group_table(index, cells)
        paired_table(index, cells)
        if args.conclude:
            verdict_lines(index, cells)
    else:
        experiment_table(index, cells)
    missing = [f"{counts[s]} {s}" for s in ("failed", "running", "pending") if counts[s]]
    if missing:
        print(f"(not complete, not shown or aggregated: {', '.join(missing)}; "
              "report.py lists them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
