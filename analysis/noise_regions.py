#!/usr/bin/python3
"""Where the learned noise goes, against its norm-matched random control (phantom runs).

Usage: /usr/bin/python3 analysis/noise_regions.py RUN_DIR [--figure PNG] [--max-cells N] [--cells PATTERN ...]

For every noise experiment of RUN_DIR/experiments/*.h5 that has /regions (phantom data) and a
/control/noise, compute for the learned noise and for its control:
  - the share of the noise energy sum(eps^2) inside the SA region (breast shadow or marker), the
    effusion region, and elsewhere (the same numbers as /metrics/noise_energy_*), and
  - the cosine between the noise and each cue's mean-contribution map (/regions/*_map): > 0 means
    the noise adds that cue's pattern to every image, < 0 that it subtracts it; i.i.d. noise gives
    0 +- 1/sqrt(pixels).
Prints one Markdown table per sweep cell (config keys other than the seed that differ between
experiments) with mean [95% t-interval] over seeds for the noise, the control, and their paired
difference. With --figure, draws the seed-averaged learned noise of up to --max-cells cells with
the SA region (red) and the effusion region (blue) outlined. See docs/dne.md.
"""
import argparse
import sys
import tomllib
from pathlib import Path

import h5py
import numpy as np

try:  # run as a script (analysis/ on sys.path) or imported as the analysis package
    from stats import format_difference, interval
except ImportError:
    from .stats import format_difference, interval

CUES = ("breast", "marker", "effusion")
# Sections only the zeroth-order editors read (the key table's for_methods), for labels when
# index.h5 does not describe a key.
ZO_SECTIONS, ZO_METHODS = ("gezo.", "zo.", "nes.", "comm.", "api."), ("gezo", "rge", "spsa", "nes")
IGNORED_SECTIONS = {"output", "run"}
# Keys renamed since older result files were written (their resolved config names them the old
# way): read under the new name, so old and new files of one sweep fall into the same cells.
RENAMED = {f"gezo.{k}": f"zo.{k}" for k in ("candidates", "sigma", "budget", "optimizer", "lr")}


def flatten(cfg):
    """A parsed config as {"section.key": value}, without the output and run sections, renamed
    keys under their current names."""
    return {RENAMED.get(f"{sec}.{key}", f"{sec}.{key}"): value for sec, table in cfg.items() if sec not in IGNORED_SECTIONS
            for key, value in table.items()}


def fmt(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def cosine(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a.ravel() @ b.ravel() / (na * nb)) if na > 0 and nb > 0 else float("nan")


def noise_numbers(eps, regions):
    """Energy shares and cue cosines of one noise image (H, W)."""
    e = eps.astype(np.float64) ** 2
    total = e.sum()
    sa, dis = regions["sa"], regions["disease"]
    out = {"energy_sa": e[sa].sum() / total if total > 0 else np.nan,
           "energy_disease": e[dis].sum() / total if total > 0 else np.nan,
           "energy_elsewhere": e[~sa & ~dis].sum() / total if total > 0 else np.nan}
    for cue in CUES:
        out[f"cos_{cue}"] = cosine(eps.astype(np.float64), regions[cue])
    return out


def load(run_dir):
    rows = []
    for path in sorted(Path(run_dir, "experiments").glob("*.h5")):
        with h5py.File(path, "r", locking=False) as f:
            if "regions" not in f or "control" not in f:
                continue
            regions = {"sa": f["regions/sa"][()].astype(bool), "disease": f["regions/disease"][()].astype(bool)}
            for cue in CUES:
                regions[cue] = f[f"regions/{cue}_map"][()].astype(np.float64)
            noise, control = f["noise"][()], f["control/noise"][()]
            rows.append({"config": flatten(tomllib.loads(f.attrs["config"])), "noise": noise,
                         "dne": noise_numbers(noise, regions), "control": noise_numbers(control, regions),
                         "area_sa": regions["sa"].mean(), "area_disease": regions["disease"].mean(),
                         "regions": regions})
    return rows


def key_methods(run_dir):
    """index.h5's /key_methods: key -> the methods that read it (empty when there is no index)."""
    path = Path(run_dir, "index.h5")
    if not path.is_file():
        return {}
    with h5py.File(path, "r", locking=False) as f:
        group = f.get("key_methods")
        return {k: {m.decode() if isinstance(m, bytes) else str(m) for m in v[()]} for k, v in group.items()} if group else {}


def cells_of(rows, methods_of=None):
    """Sweep cells: the config keys other than the seed that differ, leaving out the keys a
    method does not read (index.h5's /key_methods), sorted by their labels."""
    methods_of = methods_of or {}
    keys = sorted({k for r in rows for k in r["config"]})
    axes = [k for k in keys if k != "sweep.seeds" and len({repr(r["config"].get(k)) for r in rows}) > 1]
    cells = {}
    for r in rows:
        method = r["config"].get("dne.method")
        label = tuple(f"{k.split('.', 1)[1]}={fmt(r['config'].get(k))}" for k in axes
                      if (method in methods_of[k] if k in methods_of
                          else method in ZO_METHODS or not k.startswith(ZO_SECTIONS)))
        cells.setdefault(label, []).append(r)
    return dict(sorted(cells.items()))


def show(values, signed=False):
    """A value over seeds as 'm [lo, hi]'; signed: a paired difference (stats.format_difference)."""
    if signed:
        return format_difference(values)
    mean, _, half = interval(values)
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.3f}" if np.isnan(half) else f"{mean:.3f} [{mean - half:.3f}, {mean + half:.3f}]"


def table(cell, rs):
    print(f"### {', '.join(cell) or 'all'} ({len(rs)} seeds)")
    print()
    print(f"Region areas: SA {np.mean([r['area_sa'] for r in rs]):.3f}, effusion "
          f"{np.mean([r['area_disease'] for r in rs]):.3f} of the pixels.")
    print()
    print("| measure | learned noise | control | learned - control |")
    print("|---|---|---|---|")
    for name in ("energy_sa", "energy_disease", "energy_elsewhere") + tuple(f"cos_{c}" for c in CUES):
        dne = [r["dne"][name] for r in rs]
        ctl = [r["control"][name] for r in rs]
        print(f"| {name} | {show(dne)} | {show(ctl)} | {show([a - b for a, b in zip(dne, ctl)], signed=True)} |")
    print()


def pick(cells, patterns, max_cells):
    """The cells to draw: for each pattern "a+b", the first cell whose label contains a and b;
    without patterns, the first max_cells cells."""
    if not patterns:
        return list(cells.items())[:max_cells]
    chosen = []
    for pattern in patterns:
        parts = pattern.split("+")
        match = [(c, rs) for c, rs in cells.items() if all(any(p == item for item in c) for p in parts)]
        if not match:
            raise SystemExit(f"noise_regions: no cell matches {pattern!r}")
        chosen.append(match[0])
    return chosen


def figure(cells, path, max_cells, patterns=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    chosen = pick(cells, patterns, max_cells)
    fig, axes = plt.subplots(1, len(chosen), figsize=(2.6 * len(chosen), 3.0), squeeze=False)
    for ax, (cell, rs) in zip(axes[0], chosen):
        mean = np.mean([r["noise"] for r in rs], axis=0)
        lim = np.abs(mean).max() or 1.0
        ax.imshow(mean, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.contour(rs[0]["regions"]["sa"], levels=[0.5], colors="red", linewidths=0.8)
        ax.contour(rs[0]["regions"]["disease"], levels=[0.5], colors="blue", linewidths=0.8)
        ax.set_title("\n".join(cell) + f"\n(mean of {len(rs)} seeds)", fontsize=7)
        ax.axis("off")
    fig.suptitle("Learned noise (red +, blue -); outlines: SA region (red), effusion region (blue)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--figure", help="write the seed-averaged noise maps to this PNG")
    ap.add_argument("--max-cells", type=int, default=6)
    ap.add_argument("--cells", nargs="+", metavar="PATTERN",
                    help="cells to draw, each as key=value items joined by + (e.g. method=whitebox+max_linf=0.1)")
    args = ap.parse_args(argv)
    rows = load(args.run_dir)
    if not rows:
        print(f"noise_regions: no noise experiment with /regions and /control in {args.run_dir}/experiments",
              file=sys.stderr)
        return 1
    cells = cells_of(rows, key_methods(args.run_dir))
    print("Mean [95% t-interval] over seeds; * = the paired interval excludes 0. energy_*: share of "
          "sum(eps^2); cos_*: cosine between the noise and the cue's mean-contribution map.")
    print()
    for cell, rs in cells.items():
        table(cell, rs)
    if args.figure:
        figure(cells, args.figure, args.max_cells, args.cells)
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
