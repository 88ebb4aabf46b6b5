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
  report.md                  links everything, lists pending/running/failed experiments

Every complete experiment's accuracy, AUC and fairness gaps are recomputed from /test/* with the
independent NumPy implementation in dne_metrics.py and compared with its /metrics (and with the
index's copy). Exit status: 0 on success, 2 for unreadable input (one line naming the file),
3 when a stored metric disagrees with the recomputation (the report is still written).
See docs/analysis.md.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

try:  # imported as part of the `analysis` package
    from . import check_metrics, dne_metrics
    from .stats import format_difference, format_interval, interval, t95
except ImportError:  # run as a script, or imported with analysis/ on sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import check_metrics
    import dne_metrics
    from stats import format_difference, format_interval, interval, t95
if __name__ == "__main__":  # report_figures imports `report`: let it find this module, not a copy
    sys.modules.setdefault("report", sys.modules[__name__])

SCHEMA_VERSION = 1
STATUSES = ("complete", "failed", "running", "pending")
SEED_KEYS = ("sweep.seed", "sweep.seeds")
# Datasets of /experiments that every index must have.
ROW_STRINGS = ("id", "status", "error", "file", "method", "editor_status")
ROW_NUMBERS = ("seed", "wall_s", "queries", "ranks", "resumed")

# Order in which metrics are listed (the contract's order, then the extras); others follow sorted.
METRIC_ORDER = (
    "accuracy", "auc", "acc_a0_y0", "acc_a0_y1", "acc_a1_y0", "acc_a1_y1", "eo_n", "eo_p", "di",
    "tpr_gap", "fpr_gap", "equalized_odds", "dp_gap", "worst_group_accuracy", "worst_group_auc",
    "frozen_sa_accuracy", "frozen_sa_auc", "sa_leakage_auc", "sa_leakage_accuracy",
    "sa_probe_clean_accuracy", "sa_probe_clean_auc", "noise_l2", "noise_linf")
GAPS = ("eo_n", "eo_p", "di", "tpr_gap", "fpr_gap", "equalized_odds", "dp_gap")
TABLE_COLUMNS = ("accuracy", "auc", "eo_n", "eo_p", "di", "sa_leakage_auc", "frozen_sa_accuracy",
                 "queries")
HIGHER_BETTER = {"accuracy", "auc"}
LOWER_BETTER = {"eo_n", "eo_p", "di"}
# The method table: index.h5's /methods (name, kind, trace_x; written by dne from
# include/dne/config/methods.hpp), loaded by read_index. The defaults describe index files
# written before /methods existed.
METHODS: dict = {}  # name -> {"kind": ..., "trace_x": ...}, in display order
DEFAULT_METHODS = {
    "none": {"kind": "reference", "trace_x": ""}, "random": {"kind": "control", "trace_x": ""},
    "whitebox": {"kind": "whitebox", "trace_x": "images"}, "gezo": {"kind": "zeroth_order", "trace_x": "queries"},
    "rge": {"kind": "zeroth_order", "trace_x": "queries"}, "spsa": {"kind": "zeroth_order", "trace_x": "queries"}}


def methods() -> dict:
    """The method table of the index read last (or the defaults)."""
    return METHODS or DEFAULT_METHODS


def method_order() -> tuple:
    return tuple(methods())


def methods_of(*kinds) -> tuple:
    """Names of the methods of these kinds, in display order."""
    return tuple(name for name, m in methods().items() if m["kind"] in kinds)


def editing_methods() -> tuple:
    """The methods that learn a noise (Figure 2a's lines)."""
    return methods_of("whitebox", "zeroth_order")


def trace_axes() -> dict:
    """method -> what its /trace x-axis counts, for the methods that have a trace."""
    return {name: m["trace_x"] for name, m in methods().items() if m["trace_x"]}

# Which methods read a config key: index.h5's /key_methods/<key> (written by dne from its key
# table), loaded by read_index. A key that does not apply to a method holds its default in the
# index; tables and labels show it as "-". A key the index does not describe applies to all.
KEY_METHODS: dict = {}

FIGURES = ("figure2a_lambda.png", "figure2b_local_epochs.png", "figure2c_budget.png", "noise_maps.png",
           "pareto.png", "convergence.png", "leakage_auc.png", "poisoning.png")


class InputError(Exception):
    """Unreadable or malformed input: reported as one line, exit status 2."""


# ---------------------------------------------------------------------------------------------
# Reading index.h5
# ---------------------------------------------------------------------------------------------

@dataclass
class Row:
    """One experiment of the sweep (one entry of /experiments)."""
    index: int
    id: str
    status: str
    error: str
    file: str
    method: str
    editor_status: str
    seed: int
    wall_s: float
    queries: float  # NaN unless complete
    ranks: int
    resumed: int
    axes: dict = field(default_factory=dict)     # key -> float or str (resolved value)
    metrics: dict = field(default_factory=dict)  # name -> float

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def value(self, name: str) -> float:
        """A metric, or queries / wall_s."""
        if name == "queries":
            return self.queries
        if name == "wall_s":
            return self.wall_s
        return self.metrics.get(name, math.nan)


@dataclass
class Index:
    run_dir: Path
    path: Path
    attrs: dict
    axes: list            # sweep axis keys from /axes
    axis_keys: list       # every key under /experiments/axes (axes first)
    metric_names: list
    rows: list

    @property
    def cell_keys(self) -> list:
        """Keys that identify a sweep cell: the method, then every axis but the seed."""
        return ["dne.method"] + [k for k in self.axes if k not in SEED_KEYS and k != "dne.method"]

    def complete_rows(self) -> list:
        return [r for r in self.rows if r.complete]


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return str(value)


def _strings(ds) -> list:
    """A 1-D dataset of variable- or fixed-length strings as a list of str."""
    return [_text(v) for v in np.atleast_1d(ds[()])]


def _attr_value(v):
    """An HDF5 attribute as a Python str, int or float (arrays stay arrays)."""
    if isinstance(v, (bytes, str, np.bytes_)):
        return _text(v)
    arr = np.asarray(v)
    if arr.size == 1 and arr.dtype.kind in "iufb":
        return arr.reshape(()).item()
    if arr.size == 1 and arr.dtype.kind in "SOU":
        return _text(arr.reshape(())[()])
    return v


def _attr_int(attrs, name: str, default=None):
    if name not in attrs:
        return default
    try:
        return int(np.asarray(attrs[name]).reshape(()))
    except (TypeError, ValueError):
        return default


def _open_h5(path: Path, what: str, retries: int = 0):
    """Open an HDF5 file read-only, without HDF5 file locking (a running sweep holds its files
    open). `retries`: further attempts 0.5 s apart, for index.h5, which a running sweep rewrites."""
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    for attempt in range(retries + 1):
        try:
            return h5py.File(path, "r", locking=False)
        except OSError as e:  # truncated, being written, not HDF5
            last = e
            if attempt < retries:
                time.sleep(0.5)
    raise InputError(f"{path}: cannot read {what} as HDF5 ({_first_line(last)})")


def _first_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_index(run_dir: Path) -> Index:
    path = run_dir / "index.h5"
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: run directory not found")
    f = _open_h5(path, "sweep index (index.h5)", retries=2)
    try:
        with f:
            return _parse_index(run_dir, path, f)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise InputError(f"{path}: malformed sweep index ({_first_line(e)})") from None


def _parse_index(run_dir: Path, path: Path, f) -> Index:
    attrs = {k: _attr_value(v) for k, v in f.attrs.items()}
    version = _attr_int(f.attrs, "schema_version")
    if version is None:
        raise InputError(f"{path}: not a sweep index (no schema_version attribute)")
    if version != SCHEMA_VERSION:
        raise InputError(f"{path}: unsupported index schema_version {version} (this report reads {SCHEMA_VERSION})")
    exps = f.get("experiments")
    if not isinstance(exps, h5py.Group):
        raise InputError(f"{path}: missing group /experiments")
    for name in ROW_STRINGS + ROW_NUMBERS:
        if not isinstance(exps.get(name), h5py.Dataset):
            raise InputError(f"{path}: missing dataset /experiments/{name}")
    cols = {name: _strings(exps[name]) for name in ROW_STRINGS}
    cols.update({name: np.atleast_1d(exps[name][()]) for name in ROW_NUMBERS})
    n = len(cols["id"])
    for name, values in cols.items():
        if len(values) != n:
            raise InputError(f"{path}: /experiments/{name} has {len(values)} entries, /experiments/id has {n}")

    axes = _strings(f["axes"]) if isinstance(f.get("axes"), h5py.Dataset) and f["axes"].size else []
    axis_group = exps.get("axes")
    axis_values = {}
    if isinstance(axis_group, h5py.Group):
        for key, ds in axis_group.items():
            if not isinstance(ds, h5py.Dataset):
                continue
            if h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind in "SUO":
                values = _strings(ds)
            else:
                values = [float(v) for v in np.atleast_1d(ds[()]).astype(np.float64)]
            if len(values) != n:
                raise InputError(f"{path}: /experiments/axes/{key} has {len(values)} entries, expected {n}")
            axis_values[key] = values
    for key in axes:
        if key not in axis_values:
            raise InputError(f"{path}: axis {key} listed in /axes but /experiments/axes/{key} is missing")
    metric_values = {}
    metric_group = exps.get("metrics")
    if isinstance(metric_group, h5py.Group):
        for name, ds in metric_group.items():
            values = np.atleast_1d(ds[()]).astype(np.float64)
            if len(values) != n:
                raise InputError(f"{path}: /experiments/metrics/{name} has {len(values)} entries, expected {n}")
            metric_values[name] = values
    metric_names = sort_metrics(metric_values)

    rows = []
    for i in range(n):
        queries = float(cols["queries"][i])
        status = cols["status"][i]
        rows.append(Row(
            index=i, id=cols["id"][i], status=status, error=cols["error"][i], file=cols["file"][i],
            method=cols["method"][i], editor_status=cols["editor_status"][i],
            seed=int(cols["seed"][i]), wall_s=float(cols["wall_s"][i]),
            queries=queries if (status == "complete" and queries >= 0) else math.nan,
            ranks=int(cols["ranks"][i]), resumed=int(cols["resumed"][i]),
            axes={k: v[i] for k, v in axis_values.items()},
            metrics={k: float(v[i]) for k, v in metric_values.items()}))
        rows[-1].axes.setdefault("dne.method", rows[-1].method)
    axis_keys = list(axes) + sorted(k for k in axis_values if k not in axes)
    METHODS.clear()
    method_group = f.get("methods")
    if isinstance(method_group, h5py.Group) and all(k in method_group for k in ("name", "kind", "trace_x")):
        for name, kind, trace_x in zip(_strings(method_group["name"]), _strings(method_group["kind"]),
                                       _strings(method_group["trace_x"])):
            METHODS[name] = {"kind": kind, "trace_x": trace_x}
    KEY_METHODS.clear()
    key_group = f.get("key_methods")
    if isinstance(key_group, h5py.Group):
        for key, ds in key_group.items():
            if isinstance(ds, h5py.Dataset):
                KEY_METHODS[key] = tuple(_strings(ds))
    return Index(run_dir=run_dir, path=path, attrs=attrs, axes=list(axes), axis_keys=axis_keys,
                 metric_names=metric_names, rows=rows)


def sort_metrics(names) -> list:
    known = [m for m in METRIC_ORDER if m in names]
    return known + sorted(m for m in names if m not in METRIC_ORDER)


# ---------------------------------------------------------------------------------------------
# Experiment files
# ---------------------------------------------------------------------------------------------

class ExperimentFiles:
    """Lazy, cached access to the experiment files of complete rows."""

    def __init__(self, index: Index):
        self.index = index
        self._cache: dict = {}

    def path(self, row: Row) -> Path:
        rel = row.file or f"experiments/{row.id}.h5"
        return self.index.run_dir / rel

    def _read(self, row: Row, what: str, reader):
        key = (row.id, what)
        if key not in self._cache:
            path = self.path(row)
            f = _open_h5(path, "experiment file")
            try:
                with f:
                    self._cache[key] = reader(f)
            except InputError:
                raise
            except (OSError, KeyError, ValueError, TypeError) as e:
                raise InputError(f"{path}: cannot read {what} ({_first_line(e)})") from None
        return self._cache[key]

    def test_data(self, row: Row) -> dict:
        def reader(f):
            out = {"id": _text(f.attrs.get("id", "")),
                   "metrics": {k: np.asarray(v) for k, v in f["metrics"].attrs.items()}
                   if isinstance(f.get("metrics"), h5py.Group) else None,
                   "queries": _attr_float(f["provenance"].attrs, "queries")
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


def _attr_float(attrs, name: str) -> float:
    if name not in attrs:
        return math.nan
    try:
        return float(np.asarray(attrs[name]).reshape(()))
    except (TypeError, ValueError):
        return math.nan


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
# Cells and aggregation
# ---------------------------------------------------------------------------------------------

def fmt_value(v) -> str:
    """An axis value for display: 2.0 -> '2', 0.001 -> '0.001', strings as they are."""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.6g}"
    return str(v)


def applies(key: str, method: str) -> bool:
    methods = KEY_METHODS.get(key)
    return methods is None or method in methods


def short_key(key: str) -> str:
    """'dne.lambda' -> 'lambda', 'gezo.local_epochs' -> 'local_epochs'."""
    return key.split(".", 1)[-1]


def method_rank(method: str):
    order = method_order()
    return (order.index(method) if method in order else len(order), method)


@dataclass
class Cell:
    key: tuple                 # values of index.cell_keys (as display strings)
    values: dict               # cell key -> raw value
    rows: list                 # every row of the cell, sweep order

    @property
    def method(self) -> str:
        return str(self.values["dne.method"])

    @property
    def complete(self) -> list:
        return [r for r in self.rows if r.complete]

    def axis(self, key: str):
        """The cell's value of any key under /experiments/axes (a cell key or a constant one)."""
        if key in self.values:
            return self.values[key]
        return self.rows[0].axes.get(key, math.nan)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    def stats(self, name: str):
        """(mean, sample std, n) over complete seeds; std NaN when n < 2; NaN propagates."""
        v = np.array([r.value(name) for r in self.complete], dtype=np.float64)
        return mean_std(v)

    def ci(self, name: str):
        """(mean, half-width of the 95% t-interval, n) over complete seeds with a finite value."""
        v = [r.value(name) for r in self.complete]
        mean, _, half = interval(v)
        return mean, half, sum(math.isfinite(x) for x in v)

    def label(self, keys) -> str:
        """'lambda=0.001, objective=neg_ce' over the given keys (non-applicable ones left out)."""
        parts = [f"{short_key(k)}={fmt_value(self.values[k])}" for k in keys
                 if k != "dne.method" and applies(k, self.method)]
        return ", ".join(parts)


def mean_std(v: np.ndarray):
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(np.mean(v))
    std = float(np.std(v, ddof=1)) if n > 1 else math.nan
    return mean, std, n


def make_cells(index: Index, rows=None) -> list:
    keys = index.cell_keys
    cells: dict = {}
    for r in index.rows if rows is None else rows:
        values = {k: r.axes.get(k, r.method if k == "dne.method" else "") for k in keys}
        key = tuple(fmt_value(values[k]) for k in keys)
        if key not in cells:
            cells[key] = Cell(key=key, values=values, rows=[])
        cells[key].rows.append(r)
    return list(cells.values())


def varying_keys(cells, keys) -> list:
    """Keys whose value differs between the given cells (ignoring non-applicable keys)."""
    out = []
    for k in keys:
        if k == "dne.method":
            continue
        seen = {fmt_value(c.values[k]) for c in cells if applies(k, c.method)}
        if len(seen) > 1:
            out.append(k)
    return out


def _order(v):
    """Sort key for an axis value: numbers ascending, then strings."""
    return (0, v, "") if isinstance(v, float) and not math.isnan(v) else (1, 0.0, str(v))


def sorted_cells(cells) -> list:
    """By method (fixed order), then by the cell's axis values (numbers ascending)."""
    return sorted(cells, key=lambda c: (method_rank(c.method),
                                        tuple(_order(v) for k, v in c.values.items() if k != "dne.method"),
                                        c.rows[0].index))


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
                mean, std, _ = c.stats(m)
                line += [_num(mean), _num(std)]
            w.writerow(line)
    return header


def _pm(mean: float, std: float, n: int, name: str) -> str:
    if n == 0:
        return "—"
    if math.isnan(mean):
        return "n/a"
    if name == "queries":
        text = f"{mean:,.0f}"
        return text if (n < 2 or math.isnan(std)) else f"{text} ± {std:,.0f}"
    text = f"{mean:.3f}"
    if n < 2 or math.isnan(std):
        return text
    return format_interval(mean, std, interval_half(std, n))


def interval_half(std: float, n: int) -> float:
    """Half-width of the 95% t-interval of a mean of n values with sample std `std`."""
    return t95(n) * std / math.sqrt(n)


def choose_table_cells(cells, mode: str, gap: str) -> list:
    if mode == "all":
        return cells
    best = {}
    for c in cells:
        if not c.complete:
            continue
        g, _, _ = c.stats(gap)
        acc, _, _ = c.stats("accuracy")
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
        means = [c.stats(m)[0] for c in chosen if c.complete]
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
            mean, std, k = c.stats(m)
            text = _pm(mean, std, k, m)
            if m in best_value and n and not math.isnan(mean) and mean == best_value[m] and len(chosen) > 1:
                text = f"**{text}**"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
        if c.method != "none" and any(math.isfinite(r.value("control_accuracy")) for r in c.complete):
            # The experiment's own control (norm-matched noise, or the VAE without its adversary).
            crow = ["↳ control"] + ([""] if multi or setting_keys else []) + [str(n)]
            for m in TABLE_COLUMNS:
                crow.append("" if m == "queries" else _pm(*c.stats("control_" + m), m))
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
    if any(not applies(k, c.method) for c in chosen for k in setting_keys):
        notes.append("Settings that do not apply to a method (for example lambda for ERM) are left out of its label.")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


PAIRED_METRICS = ("accuracy", "eo_n", "eo_p", "sa_leakage_auc")


def erm_partner(index: Index, row: Row):
    """The complete ERM row of `row`'s seed whose every key that ERM reads has row's value."""
    keys = [k for k in index.axis_keys if k != "dne.method" and applies(k, "none")]
    for e in index.complete_rows():
        if e.method == "none" and e.seed == row.seed and all(
                fmt_value(e.axes.get(k, "")) == fmt_value(row.axes.get(k, "")) for k in keys):
            return e
    return None


def paired_differences(index: Index, cell: Cell, metric: str):
    """(DNE - control, DNE - ERM) per seed of the cell, each a list over the seeds that have both."""
    control, erm = [], []
    for r in cell.complete:
        v = r.value(metric)
        c = r.value("control_" + metric)
        if math.isfinite(v) and math.isfinite(c):
            control.append(v - c)
        e = erm_partner(index, r)
        if e is not None and math.isfinite(v) and math.isfinite(e.value(metric)):
            erm.append(v - e.value(metric))
    return control, erm


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

    report = report_markdown(index, cells, table, agree_line, problems, pending, figure_status,
                             args, counts, finished)
    try:
        (out / "report.md").write_text(report)
    except OSError as e:
        raise InputError(f"{out / 'report.md'}: cannot write ({e.strerror or e})") from None
    written.append("report.md")
    print(f"wrote {out}/: " + ", ".join(written))
    return 3 if problems else 0


def report_markdown(index, cells, table, agree_line, problems, pending, figure_status, args,
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
