#!/usr/bin/env python3
"""Makespan of a finished sweep against the ideal, and against other schedules of the same tasks.

    /usr/bin/python3 analysis/makespan.py RUN_DIR

Reads RUN_DIR/index.h5 (docs/results-format.md): each experiment's measured time (wall_s), the
number of rank groups, and the sweep's wall time (elapsed_s). The ideal is the sum of experiment
times over the groups; the lower bound also counts the longest experiment. The alternative
schedules are simulated with the same measured times: a static round-robin in sweep order (the
scheduler dne had before), greedy hand-out in sweep order, and longest-first by the true times.
Only experiments run by this invocation (not resumed ones) count.
"""
import argparse
import heapq
import sys

import h5py
import numpy as np


def greedy(times, groups):
    """List scheduling: each task in the given order goes to the group that is free first."""
    free = [0.0] * groups
    heapq.heapify(free)
    for t in times:
        heapq.heappush(free, heapq.heappop(free) + t)
    return max(free)


def round_robin(times, groups):
    loads = [0.0] * groups
    for i, t in enumerate(times):
        loads[i % groups] += t
    return max(loads)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    args = parser.parse_args(argv)
    path = f"{args.run_dir}/index.h5"
    try:
        with h5py.File(path, "r") as f:
            groups = int(f.attrs["groups"])
            elapsed = float(f.attrs.get("elapsed_s", np.nan))
            finished = int(f.attrs["finished"])
            wall = f["experiments/wall_s"][:]
            resumed = f["experiments/resumed"][:]
            status = f["experiments/status"].asstr()[:]
    except (OSError, KeyError) as e:
        print(f"makespan: {path}: {e}", file=sys.stderr)
        return 2
    ran = (resumed == 0) & np.isfinite(wall) & np.isin(status, ["complete", "failed"])
    times = [float(t) for t in wall[ran]]
    if not times:
        print(f"makespan: {path}: no experiment was run by the last dne run", file=sys.stderr)
        return 2
    total = sum(times)
    ideal = total / groups
    bound = max(ideal, max(times))
    rows = [("measured (dne: dynamic, longest estimated first)", elapsed if finished else np.nan),
            ("simulated: static round-robin, sweep order", round_robin(times, groups)),
            ("simulated: dynamic, sweep order", greedy(times, groups)),
            ("simulated: dynamic, longest true time first", greedy(sorted(times, reverse=True), groups))]
    print(f"{len(times)} experiments, {groups} group(s), sum of experiment times {total:.1f} s, "
          f"longest {max(times):.1f} s; ideal = sum / groups = {ideal:.1f} s, lower bound {bound:.1f} s")
    print(f"| schedule | makespan [s] | / ideal |")
    print(f"|---|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.1f} | {value / ideal:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
