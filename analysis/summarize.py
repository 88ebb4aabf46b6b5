#!/usr/bin/python3
"""Print a table of headline metrics for every experiment in a run directory.

Usage: analysis/summarize.py RUN_DIR [--group]

Reads RUN_DIR/experiments/*.h5 as documented in docs/results-format.md. The table's first
columns are the config keys that differ between the experiments (the sweep axes). One row per
experiment, with the accuracy, eo_p and sa_leakage_auc of its norm-matched random control
(ctl:*, NaN for ERM); with --group, one row per sweep cell (everything but the seed) with mean ± sample
standard deviation [95% t-interval] over seeds, as a Markdown table, followed by the paired
differences of every noise cell: DNE - control (the experiment's own norm-matched random noise,
/control/metrics) and DNE - ERM (the `dne.method = "none"` experiment of the same seed, data, FM
and probes), each as mean [95% t-interval] over seeds. An interval that excludes 0 is marked *.
"""
import argparse
import sys
import tomllib
from pathlib import Path

import h5py
import numpy as np

try:  # run as a script (analysis/ on sys.path) or imported as the analysis package
    from stats import format_difference, format_interval, interval
except ImportError:
    from .stats import format_difference, format_interval, interval

PAIRED = ["accuracy", "auc", "eo_n", "eo_p", "di", "sa_leakage_auc"]
# Keys that must agree between a noise experiment and the ERM experiment it is paired with.
SHARED_SECTIONS = ("data.", "fm.", "probes.", "sweep.")
COLUMNS = ["accuracy", "auc", "eo_n", "eo_p", "di", "sa_leakage_auc", "frozen_sa_accuracy", "noise_l2", "queries"]
IGNORED_SECTIONS = {"output", "run"}
# Per-experiment rows also show these metrics of the experiment's norm-matched random control.
CONTROL_COLUMNS = ["accuracy", "eo_p", "sa_leakage_auc"]


def flatten(cfg):
    return {f"{sec}.{key}": value for sec, table in cfg.items() if sec not in IGNORED_SECTIONS
            for key, value in table.items()}


def load(run_dir):
    rows = []
    for path in sorted(Path(run_dir, "experiments").glob("*.h5")):
        with h5py.File(path, "r") as f:
            rows.append({"config": flatten(tomllib.loads(f.attrs["config"])),
                         "metrics": {**{k: float(v) for k, v in f["metrics"].attrs.items()},
                                     "queries": float(f["provenance"].attrs.get("queries", np.nan))},
                         "control": ({k: float(v) for k, v in f["control/metrics"].attrs.items()}
                                     if "control" in f else {}),
                         "status": f.attrs["status"]})
    return rows


def fmt(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def shared(config):
    return {k: v for k, v in config.items() if k.startswith(SHARED_SECTIONS)}


def paired_cell(rs, rows, metric):
    """(DNE - control, DNE - ERM) paired differences of `metric` over the cell's experiments."""
    control = [r["metrics"][metric] - r["control"][metric] for r in rs
               if metric in r["metrics"] and metric in r["control"]]
    erm = []
    for r in rs:
        match = [e for e in rows if e["config"].get("dne.method") == "none" and shared(e["config"]) == shared(r["config"])]
        if match and metric in r["metrics"] and metric in match[0]["metrics"]:
            erm.append(r["metrics"][metric] - match[0]["metrics"][metric])
    return control, erm


def paired_table(cells, cell_axes, rows):
    """Markdown table of DNE - control and DNE - ERM per noise cell (nothing if there is none)."""
    noisy = {cell: rs for cell, rs in cells.items() if rs[0]["config"].get("dne.method") != "none"}
    if not noisy:
        return
    print()
    print("Paired differences, mean [95% t-interval] over seeds; * = the interval excludes 0:")
    print()
    head = cell_axes + ["seeds"] + [f"{m}: DNE - control" for m in PAIRED] + [f"{m}: DNE - ERM" for m in PAIRED]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for cell, rs in noisy.items():
        control_cols, erm_cols = [], []
        for m in PAIRED:
            control, erm = paired_cell(rs, rows, m)
            control_cols.append(format_difference(control))
            erm_cols.append(format_difference(erm))
        print("| " + " | ".join(list(cell) + [str(len(rs))] + control_cols + erm_cols) + " |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--group", action="store_true", help="mean ± std over seeds, Markdown")
    args = ap.parse_args(argv)
    rows = load(args.run_dir)
    if not rows:
        print(f"summarize: no experiment files in {args.run_dir}/experiments", file=sys.stderr)
        return 1
    keys = sorted({k for r in rows for k in r["config"]})
    axes = [k for k in keys if len({repr(r["config"].get(k)) for r in rows}) > 1]
    cell_axes = [k for k in axes if k != "sweep.seeds"]
    sort_key = lambda r: tuple(str(r["config"].get(k)) for k in axes)
    rows.sort(key=sort_key)
    if args.group:
        cells = {}
        for r in rows:
            cells.setdefault(tuple(fmt(r["config"].get(k)) for k in cell_axes), []).append(r)
        print("| " + " | ".join(cell_axes + ["seeds"] + COLUMNS) + " |")
        print("|" + "---|" * (len(cell_axes) + 1 + len(COLUMNS)))
        for cell, rs in cells.items():
            stats = []
            for c in COLUMNS:
                v = [r["metrics"].get(c, np.nan) for r in rs]
                stats.append(f"{np.nanmean(v):.0f}" if c == "queries" else format_interval(*interval(v)))
            print("| " + " | ".join(list(cell) + [str(len(rs))] + stats) + " |")
        paired_table(cells, cell_axes, rows)
    else:
        control_heads = [f"ctl:{c[:8]}" for c in CONTROL_COLUMNS]
        print("  ".join([f"{a:>16}" for a in axes] + [f"{c[:12]:>12}" for c in COLUMNS + control_heads] + ["status"]))
        for r in rows:
            print("  ".join([f"{fmt(r['config'].get(a)):>16}" for a in axes] +
                            [f"{r['metrics'].get(c, np.nan):>12.{0 if c == 'queries' else 3}f}" for c in COLUMNS] +
                            [f"{r['control'].get(c, np.nan):>12.3f}" for c in CONTROL_COLUMNS] +
                            [r["status"]]))
        if any(r["control"] for r in rows):
            print("(ctl: the experiment's norm-matched random control, same L2 norm, same pipeline; "
                  "--group gives intervals over seeds and paired differences)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
