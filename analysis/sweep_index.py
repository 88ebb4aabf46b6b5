"""The sweep index model shared by the analysis scripts: rows of RUN_DIR/index.h5, sweep cells, per-cell statistics.

One definition, used by analysis/report.py, analysis/report_figures.py and analysis/summarize.py:

  read_index(run_dir) -> Index   RUN_DIR/index.h5 (schema 1, docs/results-format.md): its rows
                                 (Row), axes, metric names and method table (MethodTable: the
                                 /methods and /key_methods datasets, carried on the Index, no
                                 module-level state)
  make_cells(index) -> [Cell]    rows grouped into sweep cells: the method and every axis value
                                 except the seed
  cell_stat(values) -> CellStat  mean, sample std (ddof = 1), 95% t-interval and n over a cell's
                                 complete seeds; n = 1: std and interval NaN; a NaN value makes the
                                 mean NaN (undefined is never averaged away)
  markdown_stat(stat, name)      that statistic as Markdown text (the tables of report.py and
                                 summarize.py --group)
  erm_partner, paired_differences  the ERM row of the same seed, paired differences over seeds
  finite_differences(pairs)      a - b over the (a, b) pairs of one cell's seeds where both are finite

Unreadable input raises InputError, whose text is one line naming the file. See docs/analysis.md.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, NamedTuple

import h5py
import numpy as np

try:  # imported as part of the `analysis` package
    from .stats import format_interval, interval
except ImportError:  # run as a script, or imported with analysis/ on sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from stats import format_interval, interval

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


class InputError(Exception):
    """Unreadable or malformed input: reported as one line (the scripts exit with status 2)."""


# ---------------------------------------------------------------------------------------------
# The method table
# ---------------------------------------------------------------------------------------------

class Method(NamedTuple):
    kind: str     # reference, control, whitebox, zeroth_order, embedding
    trace_x: str  # what its /trace x-axis counts (images, queries, epochs), "" without a trace


# The method table of index files written before /methods existed (read-only).
DEFAULT_METHODS = MappingProxyType({
    "none": Method("reference", ""), "random": Method("control", ""),
    "whitebox": Method("whitebox", "images"), "gezo": Method("zeroth_order", "queries"),
    "rge": Method("zeroth_order", "queries"), "spsa": Method("zeroth_order", "queries")})


@dataclass(frozen=True)
class MethodTable:
    """index.h5's /methods (name, kind, trace_x in display order; written by dne from
    include/dne/config/methods.hpp) and /key_methods/<key> (the methods that read each key).

    An index without /methods gets DEFAULT_METHODS; a key without /key_methods applies to every
    method. A key that does not apply to a method holds its default in the index; tables and
    labels leave it out."""
    methods: Mapping = field(default_factory=lambda: DEFAULT_METHODS)           # name -> Method
    key_methods: Mapping = field(default_factory=lambda: MappingProxyType({}))  # key -> (method, ...)

    def order(self) -> tuple:
        """Method names in display order."""
        return tuple(self.methods)

    def of(self, *kinds) -> tuple:
        """Names of the methods of these kinds, in display order."""
        return tuple(name for name, m in self.methods.items() if m.kind in kinds)

    def editing(self) -> tuple:
        """The methods that learn a noise (Figure 2a's lines)."""
        return self.of("whitebox", "zeroth_order")

    def trace_axes(self) -> dict:
        """method -> what its /trace x-axis counts, for the methods that have a trace."""
        return {name: m.trace_x for name, m in self.methods.items() if m.trace_x}

    def applies(self, key: str, method: str) -> bool:
        """Whether `method` reads config key `key`."""
        methods = self.key_methods.get(key)
        return methods is None or method in methods

    def rank(self, method: str):
        """Sort key of a method: display order, unknown methods last by name."""
        order = self.order()
        return (order.index(method) if method in order else len(order), method)

    @classmethod
    def read(cls, f) -> "MethodTable":
        """The table of an open index.h5."""
        methods = DEFAULT_METHODS
        g = f.get("methods")
        if isinstance(g, h5py.Group) and all(isinstance(g.get(k), h5py.Dataset) for k in ("name", "kind", "trace_x")):
            methods = MappingProxyType({name: Method(kind, trace_x) for name, kind, trace_x in zip(
                strings(g["name"]), strings(g["kind"]), strings(g["trace_x"]))})
        key_methods = {}
        g = f.get("key_methods")
        if isinstance(g, h5py.Group):
            for key, ds in g.items():
                if isinstance(ds, h5py.Dataset):
                    key_methods[key] = tuple(strings(ds))
        return cls(methods=methods, key_methods=MappingProxyType(key_methods))


# ---------------------------------------------------------------------------------------------
# Rows and the index
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
    metrics: dict = field(default_factory=dict)  # name -> float (index.h5's copy of /metrics)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def value(self, name: str) -> float:
        """A metric, or queries / wall_s; NaN when the row does not have it."""
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
    methods: MethodTable = field(default_factory=MethodTable)

    @property
    def cell_keys(self) -> list:
        """Keys that identify a sweep cell: the method, then every axis but the seed."""
        return ["dne.method"] + [k for k in self.axes if k not in SEED_KEYS and k != "dne.method"]

    @property
    def seed_key(self) -> str:
        """The seed's key under /experiments/axes (sweep.seeds, or sweep.seed), else 'seed'."""
        return next((k for k in self.axes + self.axis_keys if k in SEED_KEYS), "seed")

    def complete_rows(self) -> list:
        return [r for r in self.rows if r.complete]

    def counts(self) -> dict:
        """status -> number of rows, for every status of STATUSES."""
        return {s: sum(r.status == s for r in self.rows) for s in STATUSES}

    def file_path(self, row: Row) -> Path:
        """The experiment file of a row, as the index names it (relative to the run directory)."""
        return self.run_dir / (row.file or f"experiments/{row.id}.h5")


def h5_text(value) -> str:
    """A string read from HDF5 (bytes, str, 0-d array) as str."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return h5_text(value[()])
    return str(value)


def strings(ds) -> list:
    """A 1-D dataset of variable- or fixed-length strings as a list of str."""
    return [h5_text(v) for v in np.atleast_1d(ds[()])]


def _attr_value(v):
    """An HDF5 attribute as a Python str, int or float (arrays stay arrays)."""
    if isinstance(v, (bytes, str, np.bytes_)):
        return h5_text(v)
    arr = np.asarray(v)
    if arr.size == 1 and arr.dtype.kind in "iufb":
        return arr.reshape(()).item()
    if arr.size == 1 and arr.dtype.kind in "SOU":
        return h5_text(arr.reshape(())[()])
    return v


def _attr_int(attrs, name: str, default=None):
    if name not in attrs:
        return default
    try:
        return int(np.asarray(attrs[name]).reshape(()))
    except (TypeError, ValueError):
        return default


def attr_float(attrs, name: str) -> float:
    """A numeric attribute as float; NaN when absent or not a number."""
    if name not in attrs:
        return math.nan
    try:
        return float(np.asarray(attrs[name]).reshape(()))
    except (TypeError, ValueError):
        return math.nan


def first_line(e) -> str:
    """The first line of an exception's text (its type name if empty)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def open_h5(path: Path, what: str, retries: int = 0):
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
    raise InputError(f"{path}: cannot read {what} as HDF5 ({first_line(last)})")


def read_index(run_dir: Path) -> Index:
    """RUN_DIR/index.h5 as an Index; InputError (one line naming the file) when unreadable."""
    run_dir = Path(run_dir)
    path = run_dir / "index.h5"
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: run directory not found")
    f = open_h5(path, "sweep index (index.h5)", retries=2)
    try:
        with f:
            return _parse_index(run_dir, path, f)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise InputError(f"{path}: malformed sweep index ({first_line(e)})") from None


def _parse_index(run_dir: Path, path: Path, f) -> Index:
    attrs = {k: _attr_value(v) for k, v in f.attrs.items()}
    version = _attr_int(f.attrs, "schema_version")
    if version is None:
        raise InputError(f"{path}: not a sweep index (no schema_version attribute)")
    if version != SCHEMA_VERSION:
        raise InputError(f"{path}: unsupported index schema_version {version} (this reader reads {SCHEMA_VERSION})")
    exps = f.get("experiments")
    if not isinstance(exps, h5py.Group):
        raise InputError(f"{path}: missing group /experiments")
    for name in ROW_STRINGS + ROW_NUMBERS:
        if not isinstance(exps.get(name), h5py.Dataset):
            raise InputError(f"{path}: missing dataset /experiments/{name}")
    cols = {name: strings(exps[name]) for name in ROW_STRINGS}
    cols.update({name: np.atleast_1d(exps[name][()]) for name in ROW_NUMBERS})
    n = len(cols["id"])
    for name, values in cols.items():
        if len(values) != n:
            raise InputError(f"{path}: /experiments/{name} has {len(values)} entries, /experiments/id has {n}")

    axes = strings(f["axes"]) if isinstance(f.get("axes"), h5py.Dataset) and f["axes"].size else []
    axis_group = exps.get("axes")
    axis_values = {}
    if isinstance(axis_group, h5py.Group):
        for key, ds in axis_group.items():
            if not isinstance(ds, h5py.Dataset):
                continue
            if h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind in "SUO":
                values = strings(ds)
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
    return Index(run_dir=run_dir, path=path, attrs=attrs, axes=list(axes), axis_keys=axis_keys,
                 metric_names=sort_metrics(metric_values), rows=rows, methods=MethodTable.read(f))


def sort_metrics(names) -> list:
    known = [m for m in METRIC_ORDER if m in names]
    return known + sorted(m for m in names if m not in METRIC_ORDER)


# ---------------------------------------------------------------------------------------------
# Per-cell statistics
# ---------------------------------------------------------------------------------------------

class CellStat(NamedTuple):
    mean: float  # NaN when n = 0 or any value is NaN
    std: float   # sample standard deviation (ddof = 1); NaN when n < 2 or the mean is NaN
    half: float  # half-width of the 95% Student-t interval, t(0.975, n-1) * std / sqrt(n); NaN likewise
    n: int       # values (complete seeds), NaN ones included


def cell_stat(values) -> CellStat:
    """Mean, sample std, 95% t-interval and n over a cell's values (one per complete seed).

    n = 0: everything NaN. n = 1: the mean, std and interval NaN (a sample std of one value is
    undefined). A NaN (or infinite) value makes mean, std and interval NaN: undefined is never
    averaged away."""
    v = np.asarray(list(values), dtype=np.float64)
    n = int(v.size)
    if n == 0 or not np.all(np.isfinite(v)):
        return CellStat(math.nan, math.nan, math.nan, n)
    mean, std, half = interval(v)  # stats.py: NaN std and half-width for one value
    return CellStat(mean, std, half, n)


def markdown_stat(stat: CellStat, name: str = "") -> str:
    """A cell statistic for a Markdown table: 'mean ± std [lo, hi]' (3 decimals); the mean
    alone when n = 1 (no ±: the std is undefined); 'n/a' when the mean is NaN; '—' when n = 0.
    queries: '1,000 ± 12' (no interval)."""
    if stat.n == 0:
        return "—"
    if math.isnan(stat.mean):
        return "n/a"
    if name == "queries":
        text = f"{stat.mean:,.0f}"
        return text if math.isnan(stat.std) else f"{text} ± {stat.std:,.0f}"
    return format_interval(stat.mean, stat.std, stat.half)


# ---------------------------------------------------------------------------------------------
# Sweep cells
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


def short_key(key: str) -> str:
    """'dne.lambda' -> 'lambda', 'gezo.local_epochs' -> 'local_epochs'."""
    return key.split(".", 1)[-1]


@dataclass
class Cell:
    """One sweep cell: the rows that share every cell key (all axis values but the seed)."""
    key: tuple                 # values of index.cell_keys (as display strings)
    values: dict               # cell key -> raw value
    rows: list                 # every row of the cell, sweep order
    methods: MethodTable = field(default_factory=MethodTable)

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

    def applies(self, key: str) -> bool:
        """Whether the cell's method reads config key `key`."""
        return self.methods.applies(key, self.method)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    def stats(self, name: str) -> CellStat:
        """cell_stat of a metric (or queries, wall_s) over the complete seeds."""
        return cell_stat(r.value(name) for r in self.complete)

    def ci(self, name: str):
        """(mean, half-width of the 95% t-interval, n): the same numbers as stats()."""
        s = self.stats(name)
        return s.mean, s.half, s.n

    def label(self, keys) -> str:
        """'lambda=0.001, objective=neg_ce' over the given keys (non-applicable ones left out)."""
        parts = [f"{short_key(k)}={fmt_value(self.values[k])}" for k in keys
                 if k != "dne.method" and self.applies(k)]
        return ", ".join(parts)


def make_cells(index: Index, rows=None) -> list:
    """The index's rows (or `rows`) grouped into cells, in order of first appearance."""
    keys = index.cell_keys
    cells: dict = {}
    for r in index.rows if rows is None else rows:
        values = {k: r.axes.get(k, r.method if k == "dne.method" else "") for k in keys}
        key = tuple(fmt_value(values[k]) for k in keys)
        if key not in cells:
            cells[key] = Cell(key=key, values=values, rows=[], methods=index.methods)
        cells[key].rows.append(r)
    return list(cells.values())


def varying_keys(cells, keys) -> list:
    """Keys whose value differs between the given cells (ignoring non-applicable keys)."""
    out = []
    for k in keys:
        if k == "dne.method":
            continue
        seen = {fmt_value(c.values[k]) for c in cells if c.applies(k)}
        if len(seen) > 1:
            out.append(k)
    return out


def _order(v):
    """Sort key for an axis value: numbers ascending, then strings."""
    return (0, v, "") if isinstance(v, float) and not math.isnan(v) else (1, 0.0, str(v))


def sorted_cells(cells) -> list:
    """By method (display order), then by the cell's axis values (numbers ascending)."""
    return sorted(cells, key=lambda c: (c.methods.rank(c.method),
                                        tuple(_order(v) for k, v in c.values.items() if k != "dne.method"),
                                        c.rows[0].index))


# ---------------------------------------------------------------------------------------------
# Paired differences
# ---------------------------------------------------------------------------------------------

def erm_partner(index: Index, row: Row):
    """The complete ERM row of `row`'s seed whose every key that ERM reads has row's value."""
    keys = [k for k in index.axis_keys if k != "dne.method" and index.methods.applies(k, "none")]
    for e in index.complete_rows():
        if e.method == "none" and e.seed == row.seed and all(
                fmt_value(e.axes.get(k, "")) == fmt_value(row.axes.get(k, "")) for k in keys):
            return e
    return None


def finite_differences(pairs) -> list:
    """a - b for every (a, b) pair (one per seed) where both values are finite: the paired
    differences that stats.format_difference shows."""
    return [a - b for a, b in pairs if math.isfinite(a) and math.isfinite(b)]


def paired_differences(index: Index, cell: Cell, metric: str):
    """(method - control, method - ERM) per seed of the cell, each a list over the seeds that have
    both values finite. The control is the row's own control_<metric> (index.h5's copy of the
    file's /control/metrics); ERM is erm_partner's value."""
    control = finite_differences((r.value(metric), r.value("control_" + metric)) for r in cell.complete)
    partners = ((r, erm_partner(index, r)) for r in cell.complete)
    erm = finite_differences((r.value(metric), e.value(metric)) for r, e in partners if e is not None)
    return control, erm
