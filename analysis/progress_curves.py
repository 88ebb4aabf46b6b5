"""Queries to target: the experiment files' /progress groups, aggregated per sweep cell.

With dne.eval_every > 0 a noise-learning experiment measures its noise on the validation split
whenever another eval_every queries are spent (docs/results-format.md, `/progress`):
/progress/queries (0 first: noise = 0, i.e. ERM; the editor's total last) and one array of the same
length per measurement (val_eo_n, val_sa_leakage_auc, ...), and, as attributes, the same
measurements of its norm-matched random control at the final budget (control_val_<name>).
One definition, shared by analysis/report.py (progress.md, the report's section) and
analysis/report_figures.py (queries_to_target.png):

  read_progress(f) -> Progress | None   an open experiment file's /progress (None without it)
  common_grid(queries) -> (grid, same)  one x grid for a cell's seeds: their queries array when
                                        every seed has the same one, else the union of their points
                                        inside the range that every seed covers
  cell_progress(cells, files)           the cells whose complete experiments have /progress, as
                                        CellProgress: mean curve and 95% t-band on the grid, final
                                        values, the control's values, paired differences
  progress_markdown(index, progress)    progress.md: per cell the final values, the control's and
                                        their difference paired by seed

Statistics are sweep_index's (cell_stat: mean and 95% t-interval over seeds, a NaN value is never
averaged away; finite_differences with stats.format_difference for paired differences).
The measurements are the experimenter's, not the search's: they are not in the queries.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import NamedTuple

import h5py
import numpy as np

try:  # imported as part of the `analysis` package
    from . import sweep_index as S
    from .stats import format_difference
except ImportError:  # run as a script, or imported with analysis/ on sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import sweep_index as S
    from stats import format_difference

# The measurements of progress.md, each beside its control and their paired difference.
TABLE_METRICS = ("val_eo_n", "val_sa_leakage_auc")


class Progress(NamedTuple):
    """One experiment's /progress."""
    queries: np.ndarray  # (points,) float64, non-decreasing, 0 first
    series: dict         # measurement name -> (points,) float64
    control: dict        # measurement name (val_eo_n, ...) -> the control's value at the final budget


def read_progress(f):
    """The /progress group of an open experiment file, or None when it has none (dne.eval_every = 0,
    ERM, the VAE, files written before it existed). ValueError for a malformed group."""
    g = f.get("progress")
    if not isinstance(g, h5py.Group) or not isinstance(g.get("queries"), h5py.Dataset):
        return None
    queries = np.asarray(g["queries"][()], dtype=np.float64).ravel()
    if queries.size == 0:
        return None
    if np.any(np.diff(queries) < 0):
        raise ValueError("/progress/queries decreases")
    series = {}
    for name, ds in g.items():
        if name == "queries" or not isinstance(ds, h5py.Dataset):
            continue
        series[name] = np.asarray(ds[()], dtype=np.float64).ravel()
        if series[name].size != queries.size:
            raise ValueError(f"/progress/{name} has {series[name].size} values, /progress/queries {queries.size}")
    control = {k[len("control_"):]: S.attr_float(g.attrs, k) for k in g.attrs if k.startswith("control_")}
    return Progress(queries, series, control)


def common_grid(queries) -> tuple:
    """(grid, same) for the queries arrays of a cell's seeds.

    Seeds of one cell normally measure at the same queries (one eval_every, one budget): the grid
    is that array and same = True. When they do not (a budget stop, a step that overshoots a mark
    differently), the grid is the union of every seed's points restricted to the range that every
    seed covers (the largest first value to the smallest last one), where each seed is then
    interpolated linearly (on_grid): no seed is extrapolated. Empty when the ranges do not meet."""
    first = queries[0]
    if all(np.array_equal(q, first) for q in queries):
        return first, True
    lo, hi = max(q[0] for q in queries), min(q[-1] for q in queries)
    union = np.unique(np.concatenate(queries))
    return union[(union >= lo) & (union <= hi)], False


def on_grid(grid, queries, values):
    """values measured at `queries`, at the grid's points (linear interpolation inside queries'
    range; the values themselves when the grid is their own queries)."""
    if np.array_equal(grid, queries):
        return values
    return np.interp(grid, queries, values)


@dataclass
class CellProgress:
    """A sweep cell's complete experiments that have /progress (seed order)."""
    cell: S.Cell
    rows: list          # S.Row, one per seed
    runs: list          # their Progress
    grid: np.ndarray    # common_grid of their queries
    same: bool          # every seed has the grid's queries (no interpolation)

    @property
    def n(self) -> int:
        return len(self.rows)

    def _series(self, run: Progress, name: str) -> np.ndarray:
        """A seed's measurement `name` (or its queries), NaN where the file does not have it."""
        if name == "queries":
            return run.queries
        return run.series.get(name, np.full(run.queries.shape, np.nan))

    def curve(self, name: str) -> tuple:
        """(mean, half-width of the 95% t-interval) over seeds at every grid point (NaN where a
        seed's value is NaN: undefined is never averaged away; half NaN for one seed)."""
        on = np.array([on_grid(self.grid, run.queries, self._series(run, name)) for run in self.runs])
        stats = [S.cell_stat(on[:, j]) for j in range(self.grid.size)]
        return np.array([s.mean for s in stats]), np.array([s.half for s in stats])

    def final(self, name: str) -> list:
        """Every seed's last measurement (at its own total, not interpolated); "queries": the totals."""
        return [float(self._series(run, name)[-1]) for run in self.runs]

    def control(self, name: str) -> list:
        """Every seed's control value of measurement `name` (NaN where the file has none)."""
        return [run.control.get(name, np.nan) for run in self.runs]

    def final_stat(self, name: str) -> S.CellStat:
        return S.cell_stat(self.final(name))

    def control_stat(self, name: str) -> S.CellStat:
        return S.cell_stat(self.control(name))

    def versus_control(self, name: str) -> list:
        """Final value minus the control's, paired by seed (the seeds with both finite)."""
        return S.finite_differences(zip(self.final(name), self.control(name)))


def cell_progress(cells, files) -> list:
    """CellProgress of every cell (table order) with at least one complete experiment that has
    /progress; `files.progress(row)` reads one experiment's (report.ExperimentFiles)."""
    out = []
    for c in S.sorted_cells(cells):
        rows = sorted(c.complete, key=lambda r: (r.seed, r.index))
        pairs = [(r, files.progress(r)) for r in rows]
        pairs = [(r, p) for r, p in pairs if p is not None]
        if not pairs:
            continue
        runs = [p for _, p in pairs]
        grid, same = common_grid([p.queries for p in runs])
        out.append(CellProgress(c, [r for r, _ in pairs], runs, grid, same))
    return out


def progress_markdown(index, progress) -> str:
    """progress.md: one row per cell with /progress: n, the final queries, and for each of
    TABLE_METRICS the final value, the control's (both mean ± std [95% t-interval]) and their
    difference paired by seed (mean [95% t-interval], * when it excludes 0)."""
    keys = S.varying_keys([p.cell for p in progress], index.cell_keys)
    head = ["method", "setting", "n", "queries"]
    for m in TABLE_METRICS:
        head += [f"{m} (final)", f"{m}: control", f"{m}: − control"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in progress:
        row = [p.cell.method, p.cell.label(keys) or "-", str(p.n), S.markdown_stat(p.final_stat("queries"), "queries")]
        for m in TABLE_METRICS:
            row += [S.markdown_stat(p.final_stat(m), m), S.markdown_stat(p.control_stat(m), m),
                    format_difference(p.versus_control(m))]
        lines.append("| " + " | ".join(row) + " |")
    note = ("The noise's effect on the validation split (/progress, dne.eval_every): disease and fresh SA "
            "probes fitted on the noised training split. final: the last measurement, at the editor's total "
            "queries (API images for zeroth-order editors, images through the model for white-box; the "
            "measurements themselves are not counted). control: the experiment's norm-matched random noise "
            "(the final noise's L2 norm), measured the same way. Mean ± sample standard deviation [95% "
            "t-interval] over the n seeds with /progress; − control: final minus control paired by seed, mean "
            "[95% t-interval], * = the interval excludes 0. The curves: queries_to_target.png.")
    return "\n".join(lines) + "\n\n" + note + "\n"
