#!/usr/bin/python3
"""Cross-check the /metrics stored in dne-sweep experiment files.

For each experiment HDF5 file, read the test predictions (/test/score,
/test/label, /test/sa), recompute the metrics with the independent NumPy
implementation in dne_metrics.py, and compare them with the scalar attributes
of /metrics.  Every metric that the recomputation produces and the file holds
is compared (NaN equals NaN; otherwise |stored - recomputed| <= TOL *
max(1, |recomputed|)).  Metrics the file holds that are not recomputed here
(e.g. frozen_sa_accuracy, sa_leakage_auc) are ignored; the required ones
(dne_metrics.REQUIRED_METRICS) must be present.

Usage: /usr/bin/python3 analysis/check_metrics.py FILE.h5 [FILE.h5 ...] [--tol 1e-6]
Prints "OK FILE (N metrics agree within TOL)" per good file, one line per
problem otherwise; exits 1 if any file has a problem.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import h5py
import numpy as np

try:  # imported as part of the `analysis` package
    from . import dne_metrics
except ImportError:  # run as a script, or imported with analysis/ on sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import dne_metrics

TEST_DATASETS = ("/test/score", "/test/label", "/test/sa")


def scalar(value) -> float:
    """An HDF5 attribute (scalar, 0-d or 1-element array) as a float."""
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"not a scalar (shape {arr.shape})")
    return float(arr.reshape(()))


def agree(stored: float, recomputed: float, tol: float) -> bool:
    """NaN equals NaN; otherwise |stored - recomputed| <= tol * max(1, |recomputed|)."""
    if math.isnan(stored) or math.isnan(recomputed):
        return math.isnan(stored) and math.isnan(recomputed)
    if math.isinf(stored) or math.isinf(recomputed):
        return stored == recomputed
    return abs(stored - recomputed) <= tol * max(1.0, abs(recomputed))


def _compare(path: str, tol: float) -> tuple[list[str], int]:
    """Problems found in one file, and the number of metrics that agree."""
    problems: list[str] = []
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        return [f"ERROR {path}: cannot open as HDF5 ({e})"], 0
    with f:
        arrays = {}
        for name in TEST_DATASETS:
            obj = f.get(name)
            if not isinstance(obj, h5py.Dataset):
                problems.append(f"MISSING {path}: dataset {name}")
            else:
                arrays[name] = obj[()]
        metrics_group = f.get("/metrics")
        stored_attrs = {}
        if not isinstance(metrics_group, h5py.Group):
            problems.append(f"MISSING {path}: group /metrics")
        else:
            stored_attrs = dict(metrics_group.attrs)
        if problems:
            return problems, 0

    try:
        recomputed = dne_metrics.classification_metrics(
            arrays["/test/score"], arrays["/test/label"], arrays["/test/sa"])
    except ValueError as e:
        return [f"ERROR {path}: bad /test data: {e}"], 0

    return compare_metrics(recomputed, stored_attrs, path, tol)


def compare_metrics(recomputed: dict, stored: dict, where: str, tol: float) -> tuple[list[str], int]:
    """Compare recomputed metrics with a file's stored /metrics attributes.

    Problems: a required metric missing, a stored value that is not a number, a value that
    disagrees. Returns (problem lines, number of metrics that agree)."""
    problems = [f"MISSING {where}: attribute /metrics/{key}"
                for key in dne_metrics.REQUIRED_METRICS if key not in stored]
    n_ok = 0
    for key, want in recomputed.items():
        if key not in stored:
            continue
        try:
            got = scalar(stored[key])
        except (TypeError, ValueError) as e:
            problems.append(f"MISMATCH {where}: /metrics/{key} is not a number ({e})")
            continue
        if agree(got, want, tol):
            n_ok += 1
        else:
            problems.append(
                f"MISMATCH {where}: {key} stored={got!r} recomputed={want!r} "
                f"(diff {abs(got - want):.3g} > tol {tol:g})")
    return problems, n_ok


def check_file(path: str, tol: float = 1e-6) -> list[str]:
    """List of problems (one human-readable line each) for one experiment file."""
    return _compare(path, tol)[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Recompute test metrics of dne-sweep experiment files and "
                    "compare them with the stored /metrics attributes.")
    parser.add_argument("files", nargs="+", metavar="FILE.h5")
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="tolerance, relative to max(1, |value|) (default 1e-6)")
    args = parser.parse_args(argv)

    failed = False
    for path in args.files:
        problems, n_ok = _compare(path, args.tol)
        if problems:
            failed = True
            for line in problems:
                print(line)
        else:
            print(f"OK {path} ({n_ok} metrics agree within {args.tol:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
