"""Figures of the sweep report (analysis/report.py): matplotlib with the Agg backend.

Reads the index model of sweep_index.py (cells, statistics, the index's method table); it does
not import report.py, which imports this module lazily.

Each figure function returns "ok" when it wrote its PNG, or "skipped: <reason>" when the sweep
has no data for it (no lambda axis, no GeZO experiment, no traces, ...). Figures are about
8 x 4.5-5.5 inches at --dpi (110 by default: 880 px wide), fonts >= 9 pt.
"""

from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import matplotlib.transforms as mtransforms  # noqa: E402
import numpy as np  # noqa: E402

try:  # imported as part of the `analysis` package
    from . import progress_curves
    from . import sweep_index as S
except ImportError:  # imported by report.py run as a script (analysis/ on sys.path)
    import progress_curves
    import sweep_index as S

WIDTH = 8.0
# Colours follow the method table's display order (index.h5's /methods): none grey, random brown,
# whitebox blue, gezo red, rge green, spsa orange, vae purple, then the rest.
PALETTE = ("#555555", "#8c564b", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#e377c2", "#17becf",
           "#bcbd22")
EXTRA_COLORS = ("#7f7f7f", "#aec7e8", "#98df8a", "#ff9896")
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P")
GAP_PANELS = (
    ("eo_n", "eo_n: accuracy gap on healthy (y = 0)", "gap\n(absolute difference, 0-1)"),
    ("eo_p", "eo_p: accuracy gap on diseased (y = 1)", "gap\n(absolute difference, 0-1)"),
    ("di", "di = |1 - acc(a1,y1) / acc(a0,y1)|", "di\n(relative gap, 0 = parity)"),
    ("accuracy", "accuracy on the test set", "accuracy\n(fraction, 0-1)"),
    ("sa_leakage_auc", "sa_leakage_auc: a fresh SA probe", "AUC\n(0.5 = attribute removed)"),
    ("auc", "disease AUC on the test set", "AUC"),
)
# queries_to_target.png: /progress measurements on the validation split (progress_curves.py).
PROGRESS_PANELS = (
    ("val_eo_n", "val_eo_n: accuracy gap on healthy (y = 0)", "gap\n(absolute difference, 0-1)"),
    ("val_sa_leakage_auc", "val_sa_leakage_auc: a fresh SA probe", "AUC\n(0.5 = attribute removed)"),
    ("val_eo_p", "val_eo_p: accuracy gap on diseased (y = 1)", "gap\n(absolute difference, 0-1)"),
    ("val_accuracy", "val_accuracy: disease probe", "accuracy\n(fraction, 0-1)"),
)


def _style():
    plt.rcParams.update({
        "font.size": 9.5, "axes.titlesize": 10, "axes.labelsize": 9.5, "legend.fontsize": 9,
        "xtick.labelsize": 9, "ytick.labelsize": 9, "figure.titlesize": 11,
        "axes.grid": True, "grid.alpha": 0.3, "savefig.facecolor": "white",
    })


def method_color(methods, method: str) -> str:
    """The colour of a method: its place in the method table (S.MethodTable) picks it."""
    order = methods.order()
    if method in order and order.index(method) < len(PALETTE):
        return PALETTE[order.index(method)]
    return EXTRA_COLORS[sum(map(ord, method)) % len(EXTRA_COLORS)]


def method_name(method: str) -> str:
    return "ERM (none)" if method == "none" else method


def gap_label(gap: str) -> str:
    if gap == "di":
        return "di = |1 - TPR ratio| (relative gap, 0 = parity)"
    return f"{gap} gap (absolute difference, 0-1)"


def _save(fig, path, dpi):
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def _legend_layout(labels, width=WIDTH):
    """(columns, rows, height in inches) of a legend below the panels of a WIDTH-wide figure."""
    if not labels:
        return 1, 0, 0.0
    # Columns that fit the figure width: ~0.075 in per character at 9 pt, plus the handle.
    col_w = 0.075 * max(len(lab) for lab in labels) + 0.7
    ncol = max(1, min(len(labels), int((width - 0.2) // col_w)))
    rows = math.ceil(len(labels) / ncol)
    return ncol, rows, 0.24 * rows + 0.15


def _bottom_legend(fig, handles, labels):
    """One legend for the whole figure, below the panels; returns the bottom margin (figure
    fraction) that the panels must leave free for it."""
    ncol, rows, height = _legend_layout(labels, fig.get_figwidth())
    if rows:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False,
                   bbox_to_anchor=(0.5, 0.0), borderaxespad=0.3)
    return height / fig.get_figheight()


def _grow_for_legend(fig, labels, base_height):
    """Make the figure base_height plus the legend's height tall."""
    fig.set_figheight(base_height + _legend_layout(labels, fig.get_figwidth())[2])


def draw_all(index, files, cells, out, args) -> dict:
    _style()
    status = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        status["figure2a_lambda.png"] = sweep_axis_figure(
            index, cells, "dne.lambda", index.methods.editing(), out / "figure2a_lambda.png", args,
            title="Effect of lambda on fairness gaps and accuracy",
            xlabel="lambda (weight of ||eps||_2, log scale)", zero_break=True)
        status["figure2b_local_epochs.png"] = sweep_axis_figure(
            index, cells, "gezo.local_epochs", ("gezo",), out / "figure2b_local_epochs.png", args,
            title="GeZO: effect of local epochs R",
            xlabel="local epochs R (GeZO iterations per batch)", zero_break=False)
        status["figure2c_budget.png"] = sweep_axis_figure(
            index, cells, "dne.max_linf", index.methods.editing(), out / "figure2c_budget.png", args,
            title="Effect of the noise budget",
            xlabel="max_linf (per-pixel bound on |eps|)", zero_break=False)
        status["noise_maps.png"] = noise_figure(index, files, cells, out / "noise_maps.png", args)
        status["pareto.png"] = pareto_figure(index, out / "pareto.png", args)
        status["convergence.png"] = convergence_figure(index, files, cells, out / "convergence.png", args)
        status["leakage_auc.png"] = leakage_figure(index, cells, out / "leakage_auc.png", args)
        status["poisoning.png"] = sweep_axis_figure(
            index, cells, "data.poison_rate", index.methods.order(), out / "poisoning.png", args,
            title="Label poisoning: flipped training labels of one group",
            xlabel="poison_rate (share of the group's labels flipped)", zero_break=False)
        status["queries_to_target.png"] = queries_to_target_figure(
            index, progress_curves.cell_progress(cells, files), out / "queries_to_target.png", args)
    return status


# ---------------------------------------------------------------------------------------------
# Figure 2: a sweep axis (lambda, local epochs) against gaps and accuracy
# ---------------------------------------------------------------------------------------------

def sweep_axis_figure(index, cells, key, methods, path, args, title, xlabel, zero_break) -> str:
    if key not in index.axis_keys:
        return f"skipped: index.h5 has no /experiments/axes/{key}"
    comp = [c for c in cells if c.method in methods and c.complete]
    if not comp:
        return f"skipped: no complete experiment of method {'/'.join(methods)}"
    xs = sorted({float(c.axis(key)) for c in comp})
    if key not in index.axes and len(xs) < 2:
        return f"skipped: {key} is not a sweep axis (every experiment has {S.fmt_value(xs[0])})"

    # One series per method and per combination of the other axes that vary, except keys that
    # move with the axis (one value per axis value within each method, e.g. dne.lr scaled with
    # dne.max_linf): those are part of the axis, not separate series.
    others = [k for k in S.varying_keys(comp, index.cell_keys) if k != key and not moves_with(comp, k, key)]
    series = {}
    for c in comp:
        label = method_name(c.method)
        extra = c.label(others)
        if extra:
            label += f" ({extra})"
        series.setdefault(label, {"method": c.method, "cells": []})["cells"].append(c)
    # A union of ablations (several [[grid]] tables) leaves single points of other ablations
    # (e.g. GeZO at the base lambda for every local_epochs): a method that has a series along
    # the axis shows only its series with at least two values.
    multi = {s["method"] for s in series.values() if len({c.axis(key) for c in s["cells"]}) > 1}
    dropped = [lab for lab, s in series.items()
               if s["method"] in multi and len({c.axis(key) for c in s["cells"]}) < 2]
    for lab in dropped:
        del series[lab]
    if dropped:
        print(f"note: {path.name}: single-value series from other ablations not drawn: " + "; ".join(dropped))
    series = dict(sorted(series.items(), key=lambda kv: (index.methods.rank(kv[1]["method"]), kv[0])))
    per_method = {}
    for s in series.values():
        s["k"] = per_method.get(s["method"], 0)
        per_method[s["method"]] = s["k"] + 1
    # ERM is a band across the axis, unless it is drawn as a series itself (an axis it reads, such
    # as the poisoning rate)
    baseline = [] if "none" in methods else [c for c in cells if c.method == "none" and c.complete]
    base_keys = S.varying_keys(baseline, index.cell_keys)

    pos = [x for x in xs if x > 0]
    use_log = zero_break or (pos and len(pos) >= 2 and pos[-1] / pos[0] >= 8)
    has_zero = any(x == 0 for x in xs)
    if use_log and not pos:  # only lambda = 0
        use_log = False
    x0 = pos[0] / 10 ** 1.5 if (use_log and has_zero) else None

    def xmap(x):
        return x0 if (x0 is not None and x == 0) else x

    fig, axes = plt.subplots(3, 2, figsize=(WIDTH, 7.0), sharex=True)
    for ax, (metric, ptitle, ylabel) in zip(axes.ravel(), GAP_PANELS):
        for j, b in enumerate(baseline):
            m, s, n = b.ci(metric)
            if math.isnan(m):
                continue
            lab = "ERM (none)" + (f" ({b.label(base_keys)})" if b.label(base_keys) else "") + f", n={n}: mean, 95% interval"
            ax.axhline(m, color="#555555", lw=1.2, ls=LINESTYLES[j % len(LINESTYLES)], label=lab)
            if not math.isnan(s):
                ax.axhspan(m - s, m + s, color="#999999", alpha=0.18, lw=0)
        n_series = len(series)
        for si, (label, s) in enumerate(series.items()):
            # Small horizontal offsets keep the error bars of different series apart.
            off = (si - (n_series - 1) / 2) * (0.04 if use_log else 0.012 * (xs[-1] - xs[0] or 1))
            dodge = (lambda x: x * 10 ** off) if use_log else (lambda x: x + off)
            color = method_color(index.methods, s["method"])
            ls = LINESTYLES[s["k"] % len(LINESTYLES)]
            marker = MARKERS[s["k"] % len(MARKERS)]
            pts = sorted(((float(c.axis(key)),) + c.ci(metric) for c in s["cells"]), key=lambda p: p[0])
            pts = [p for p in pts if not math.isnan(p[1])]
            if not pts:
                continue
            # The series' own controls (norm-matched noise; the VAE without its adversary): same
            # colour, dashed, hollow markers.
            ctl = sorted(((float(c.axis(key)),) + c.ci("control_" + metric) for c in s["cells"]), key=lambda p: p[0])
            ctl = [p for p in ctl if not math.isnan(p[1]) and not (x0 is not None and p[0] == 0)]
            if ctl:
                ax.errorbar([dodge(p[0]) * (1.0 if not use_log else 10 ** 0.02) for p in ctl], [p[1] for p in ctl],
                            yerr=[0 if math.isnan(p[2]) else p[2] for p in ctl], color=color, ls="--", alpha=0.55,
                            marker=marker, mfc="white", ms=4, capsize=2, lw=1.0, label=f"{label}: control")
            nz = [p for p in pts if not (x0 is not None and p[0] == 0)]
            zero = [p for p in pts if x0 is not None and p[0] == 0]
            ns = sorted({p[3] for p in pts})
            full = f"{label}, n={ns[0]}" if len(ns) == 1 else f"{label}, n={ns[0]}-{ns[-1]}"
            if nz:
                ax.errorbar([dodge(p[0]) for p in nz], [p[1] for p in nz],
                            yerr=[0 if math.isnan(p[2]) else p[2] for p in nz],
                            color=color, ls=ls, marker=marker, ms=5, capsize=3, lw=1.5, label=full)
            if zero:
                p = zero[0]
                ax.errorbar([dodge(x0)], [p[1]], yerr=[0 if math.isnan(p[2]) else p[2]], color=color,
                            marker=marker, ms=6, mfc="white", mew=1.5, capsize=3, ls="none",
                            label=None if nz else full)
                if nz:
                    ax.plot([dodge(x0), dodge(nz[0][0])], [p[1], nz[0][1]], color=color, ls=":", lw=1)
        ax.set_title(ptitle)
        ax.set_ylabel(ylabel)
    if use_log and not zero_break and xlabel.endswith(")"):
        xlabel = xlabel[:-1] + "; log scale)"
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)
    _x_axis(axes, xs, pos, use_log, x0)
    fig.suptitle(title + "\n(mean, 95% t-interval over seeds; dashed: each method's own control)")

    handles, labels = _collect_legend(axes.ravel())
    if x0 is not None:
        handles.append(plt.Line2D([], [], color="black", marker="o", mfc="white", ls="none"))
        labels.append(f"{S.short_key(key)} = 0 (left of the axis break)")
    _grow_for_legend(fig, labels, 7.0)
    bottom = _bottom_legend(fig, handles, labels)
    fig.tight_layout(rect=(0, bottom, 1, 0.97))
    _save(fig, path, args.dpi)
    return "ok"


def moves_with(cells, k, key) -> bool:
    """True when, within every method, each value of `key` comes with a single value of `k`."""
    seen = {}
    for c in cells:
        if c.applies(k):
            seen.setdefault((c.method, S.fmt_value(c.axis(key))), set()).add(S.fmt_value(c.axis(k)))
    return bool(seen) and all(len(v) == 1 for v in seen.values())


def _x_axis(axes, xs, pos, use_log, x0):
    for ax in axes.ravel():
        if use_log:
            ax.set_xscale("log")
            ticks = pos if len(pos) <= 8 else [10.0 ** e for e in range(math.floor(math.log10(pos[0])),
                                                                        math.ceil(math.log10(pos[-1])) + 1)]
            labels = [S.fmt_value(t) for t in ticks]
            if x0 is not None:
                ticks, labels = [x0] + list(ticks), ["0"] + labels
            ax.xaxis.set_major_locator(mticker.FixedLocator(ticks))
            ax.xaxis.set_major_formatter(mticker.FixedFormatter(labels))
            ax.xaxis.set_minor_locator(mticker.NullLocator())
            lo = x0 if x0 is not None else pos[0]
            ax.set_xlim(lo / 10 ** 0.35, pos[-1] * 10 ** 0.35)
            if x0 is not None:  # break marks on the x axis between 0 and the smallest lambda
                xb = math.sqrt(x0 * pos[0])
                trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
                ax.text(xb, 0.0, "//", transform=trans, ha="center", va="center", fontsize=11,
                        fontweight="bold", bbox=dict(facecolor="white", edgecolor="none", pad=0.5),
                        clip_on=False, zorder=5)
        else:
            ax.xaxis.set_major_locator(mticker.FixedLocator(xs) if len(xs) <= 10 else mticker.MaxNLocator(8))
            ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: S.fmt_value(float(v))))
            if len(xs) == 1:
                ax.set_xlim(xs[0] - 1, xs[0] + 1)


def _collect_legend(axes):
    handles, labels, seen = [], [], set()
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab and not lab.startswith("_") and lab not in seen:
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    return handles, labels


# ---------------------------------------------------------------------------------------------
# Noise maps (the DNE paper's Figure 3)
# ---------------------------------------------------------------------------------------------

def gaussian_smooth(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with reflected borders; img (H, W); sigma in pixels (0 = copy)."""
    img = np.asarray(img, dtype=np.float64)
    if sigma <= 0:
        return img.copy()
    r = max(1, int(math.ceil(3.0 * sigma)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    h, w = img.shape
    mode = "reflect" if r < min(h, w) else "edge"
    p = np.pad(img, r, mode=mode)  # (H + 2r, W + 2r)
    rows = sum(k[j] * p[:, j:j + w] for j in range(2 * r + 1))       # (H + 2r, W)
    return sum(k[j] * rows[j:j + h, :] for j in range(2 * r + 1))    # (H, W)


def normalise_noise(noise: np.ndarray, mode: str) -> np.ndarray:
    """signed: divide by max |eps| -> [-1, 1] (0 stays 0); minmax: -> [0, 1]."""
    if mode == "minmax":
        lo, hi = float(noise.min()), float(noise.max())
        return np.zeros_like(noise) + 0.5 if hi == lo else (noise - lo) / (hi - lo)
    m = float(np.max(np.abs(noise))) if noise.size else 0.0
    return np.zeros_like(noise) if m == 0 else noise / m


def _noise_rows(index, cells, args):
    complete = {r.id: r for r in index.complete_rows()}
    notes = []
    if args.noise_ids:
        ids = [s.strip() for s in args.noise_ids.split(",") if s.strip()]
        rows = [complete[i] for i in ids if i in complete]
        missing = [i for i in ids if i not in complete]
        if missing:
            notes.append("not complete or unknown: " + ", ".join(missing))
        return rows, notes
    rows, seen = [], set()
    for c in S.sorted_cells(cells):
        if not c.complete:
            continue
        lam = S.fmt_value(c.axis("dne.lambda")) if c.applies("dne.lambda") else "-"
        key = (c.method, lam)
        if key in seen:
            continue
        seen.add(key)
        rows.append(min(c.complete, key=lambda r: (r.seed, r.index)))
    if len(rows) > args.max_noise_rows:
        # Keep every method in view: take the candidates round-robin over methods, then show the
        # kept ones in their table order.
        by_method = {}
        for r in rows:
            by_method.setdefault(r.method, []).append(r)
        keep, k = set(), 0
        while len(keep) < args.max_noise_rows:
            for group in by_method.values():
                if k < len(group) and len(keep) < args.max_noise_rows:
                    keep.add(group[k].id)
            k += 1
        notes.append(f"{args.max_noise_rows} of {len(rows)} method/lambda cells shown (--max-noise-rows)")
        rows = [r for r in rows if r.id in keep]
    return rows, notes


def noise_figure(index, files, cells, path, args) -> str:
    rows, notes = _noise_rows(index, cells, args)
    if len(rows) > args.max_noise_rows:  # explicit --noise-ids
        notes.append(f"first {args.max_noise_rows} of {len(rows)} shown (--max-noise-rows)")
        rows = rows[:args.max_noise_rows]
    loaded = []
    for r in rows:
        noise, ex = files.noise(r)
        if noise is not None and noise.ndim == 2:
            loaded.append((r, noise, ex))
    if not loaded:
        return "skipped: no complete experiment with a /noise dataset" + (f" ({'; '.join(notes)})" if notes else "")
    for n in notes:
        print(f"note: noise_maps.png: {n}")
    lim = (-1.0, 1.0) if args.noise_norm == "signed" else (0.0, 1.0)
    cmap = "RdBu_r" if args.noise_norm == "signed" else "viridis"
    with_examples = [x for x in loaded if x[2] is not None and np.ndim(x[2]["images"]) == 3]
    cell_keys = S.varying_keys(cells, index.cell_keys)

    def row_label(r, noise):
        c = {k: r.axes.get(k) for k in cell_keys if index.methods.applies(k, r.method)}
        parts = [method_name(r.method)] + [f"{S.short_key(k)}={S.fmt_value(v)}" for k, v in c.items()]
        return "\n".join(parts + [f"seed {r.seed}, max|eps|={np.max(np.abs(noise)):.3g}"])

    sm = f"Gaussian-smoothed (sigma = {args.noise_sigma:g} px)" if args.noise_sigma > 0 else "unsmoothed"
    scale = "scaled to [-1, 1] by max |eps|" if args.noise_norm == "signed" else "scaled to [0, 1]"
    if with_examples:
        ref = with_examples[0][2]
        n_ex = min(4, ref["images"].shape[0])
        ncols, nrows = 1 + n_ex, 1 + len(loaded)
        # Explicit margins (inches): row labels on the left, colour bar on the right, titles
        # above every row; the height follows from the image width so that nothing is wasted.
        left_in, right_in, top_in, bottom_in, wspace, hspace = 1.9, 0.9, 1.0, 0.1, 0.08, 0.45
        img_in = (WIDTH - left_in - right_in) / (ncols + (ncols - 1) * wspace)
        height = top_in + bottom_in + nrows * img_in + (nrows - 1) * hspace * img_in
        fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, height), squeeze=False)
        fig.subplots_adjust(left=left_in / WIDTH, right=1 - right_in / WIDTH, top=1 - top_in / height,
                            bottom=bottom_in / height, wspace=wspace, hspace=hspace)
        h, w = loaded[0][1].shape
        for j in range(ncols):
            ax = axes[0, j]
            if j == 0:
                ax.axis("off")
                ax.text(1.0, 0.5, "clean test\nexamples", ha="right", va="center", transform=ax.transAxes)
                continue
            img = ref["images"][j - 1]
            ax.imshow(img, cmap="gray", vmin=float(ref["images"].min()), vmax=float(ref["images"].max()))
            ax.grid(False)
            ax.set_title(f"clean x\na={int(ref['sa'][j - 1])}, y={int(ref['label'][j - 1])}")
            ax.set_xticks([])
            ax.set_yticks([])
        im = None
        for i, (r, noise, ex) in enumerate(loaded, start=1):
            smooth = normalise_noise(gaussian_smooth(noise, args.noise_sigma), args.noise_norm)
            ax = axes[i, 0]
            im = ax.imshow(smooth, cmap=cmap, vmin=lim[0], vmax=lim[1])
            ax.grid(False)
            ax.set_ylabel(row_label(r, noise), rotation=0, ha="right", va="center", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 1:
                ax.set_title("noise eps\n(scaled)")
            for j in range(1, ncols):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if ex is None or ex["images"].shape[0] < j or ex["images"].shape[1:] != noise.shape:
                    ax.axis("off")
                    continue
                img = ex["images"][j - 1]
                ax.grid(False)
                ax.imshow(img + noise, cmap="gray", vmin=float(ex["images"].min()), vmax=float(ex["images"].max()))
                if i == 1:
                    ax.set_title(f"x + eps\na={int(ex['sa'][j - 1])}, y={int(ex['label'][j - 1])}")
        fig.suptitle(f"Learned noise eps: {sm}, {scale}\n"
                     f"test images of each (sa a, label y) group, {w}x{h} px; x + eps in the clean grey range",
                     fontsize=10, y=1 - 0.08 / height, va="top")
        cax = fig.add_axes((1 - (right_in - 0.25) / WIDTH, 0.2, 0.15 / WIDTH, 0.6))
        cax.grid(False)
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("noise (" + ("-1..1" if args.noise_norm == "signed" else "0..1") + ", scaled)")
    else:
        print("note: noise_maps.png: the experiment files have no /examples (written by an older dne); "
              "showing the noise only")
        ncols = min(4, len(loaded))
        nrows = math.ceil(len(loaded) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, 2.7 * nrows + 0.8), squeeze=False)
        im = None
        for ax in axes.ravel():
            ax.axis("off")
        for ax, (r, noise, _) in zip(axes.ravel(), loaded):
            ax.axis("on")
            ax.grid(False)
            im = ax.imshow(normalise_noise(gaussian_smooth(noise, args.noise_sigma), args.noise_norm),
                           cmap=cmap, vmin=lim[0], vmax=lim[1])
            ax.set_title(row_label(r, noise), fontsize=9)
            ax.set_xlabel("x (px)")
            ax.set_ylabel("y (px)")
        for ax in axes.ravel():
            ax.label_outer()
        fig.suptitle(f"Learned noise ({sm}, {scale})")
        fig.tight_layout(rect=(0, 0, 0.9, 0.95))
        cax = fig.add_axes((0.92, 0.15, 0.018, 0.6))
        cax.grid(False)
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("noise (scaled)")
    _save(fig, path, args.dpi)
    return "ok"


# ---------------------------------------------------------------------------------------------
# Pareto: accuracy against a gap
# ---------------------------------------------------------------------------------------------

def leakage_figure(index, cells, path, args) -> str:
    """sa_leakage_auc (x) against the disease AUC (y): one point per cell (mean, 95% intervals over
    seeds) and, hollow and joined to it, the cell's own control."""
    comp = [c for c in S.sorted_cells(cells) if c.complete and not math.isnan(c.ci("sa_leakage_auc")[0])]
    if not comp:
        return "skipped: no complete experiment with sa_leakage_auc"
    others = S.varying_keys(comp, index.cell_keys)
    fig, ax = plt.subplots(figsize=(WIDTH, 5.2))
    count = {}
    for c in comp:
        k = count.get(c.method, 0)
        count[c.method] = k + 1
        color, marker = method_color(index.methods, c.method), MARKERS[k % len(MARKERS)]
        x, xe, n = c.ci("sa_leakage_auc")
        y, ye, _ = c.ci("auc")
        extra = c.label(others)
        label = method_name(c.method) + (f" ({extra})" if extra else "") + f", n={n}"
        ax.errorbar([x], [y], xerr=[0 if math.isnan(xe) else xe], yerr=[0 if math.isnan(ye) else ye],
                    color=color, marker=marker, ms=6, capsize=3, ls="none", label=label)
        cx, cxe, _ = c.ci("control_sa_leakage_auc")
        cy, cye, _ = c.ci("control_auc")
        if not (math.isnan(cx) or math.isnan(cy)):
            ax.errorbar([cx], [cy], xerr=[0 if math.isnan(cxe) else cxe], yerr=[0 if math.isnan(cye) else cye],
                        color=color, marker=marker, mfc="white", ms=6, capsize=2, ls="none", alpha=0.6)
            ax.plot([cx, x], [cy, y], color=color, lw=0.8, ls=":")
    ax.axvline(0.5, color="#999999", lw=1, ls="--")
    ax.set_xlabel("sa_leakage_auc: a fresh SA probe on the debiased embeddings (0.5 = removed)")
    ax.set_ylabel("disease AUC on the test set")
    ax.set_title("Attribute leakage against disease AUC (up-left is better; hollow: the cell's own control)")
    handles, labels = ax.get_legend_handles_labels()
    _grow_for_legend(fig, labels, 5.2)
    bottom = _bottom_legend(fig, handles, labels)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    _save(fig, path, args.dpi)
    return "ok"


def pareto_front(points):
    """Indices of the points not dominated in (max accuracy, min gap); points = [(gap, acc)]."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_figure(index, path, args) -> str:
    gap = args.gap
    rows = [r for r in index.complete_rows()
            if not math.isnan(r.metrics.get(gap, math.nan)) and not math.isnan(r.metrics.get("accuracy", math.nan))]
    if not rows:
        return f"skipped: no complete experiment with defined accuracy and {gap}"
    pts = [(r.metrics[gap], r.metrics["accuracy"]) for r in rows]
    front = pareto_front(pts)
    fig, ax = plt.subplots(figsize=(WIDTH, 4.5))
    methods = sorted({r.method for r in rows}, key=index.methods.rank)
    for k, m in enumerate(methods):
        sel = [p for p, r in zip(pts, rows) if r.method == m]
        ax.scatter([p[0] for p in sel], [p[1] for p in sel], color=method_color(index.methods, m),
                   marker=MARKERS[k % len(MARKERS)], s=36, alpha=0.85, label=f"{method_name(m)} ({len(sel)})")
    fp = [pts[i] for i in front]
    ax.plot([p[0] for p in fp], [p[1] for p in fp], color="black", lw=1.2, ls="--", drawstyle="steps-post",
            zorder=1)
    ax.scatter([p[0] for p in fp], [p[1] for p in fp], s=110, facecolors="none", edgecolors="black",
               lw=1.3, label=f"Pareto front ({len(fp)}: max accuracy, min {gap})", zorder=3)
    ax.set_xlabel(gap_label(gap))
    ax.set_ylabel("accuracy (fraction, 0-1)")
    ax.set_title(f"Accuracy against {gap}, every complete experiment (up-left is better)")
    skipped = len(index.complete_rows()) - len(rows)
    if skipped:
        ax.text(0.99, 0.01, f"{skipped} with undefined {gap} not shown", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=9)
    ax.legend(loc="best")
    fig.tight_layout()
    _save(fig, path, args.dpi)
    return "ok"


# ---------------------------------------------------------------------------------------------
# Convergence: loss and frozen SA accuracy against queries
# ---------------------------------------------------------------------------------------------

def convergence_figure(index, files, cells, path, args) -> str:
    # from index.h5's /methods; the noise editors only: their x-axes count FM passes and their
    # sa_accuracy is the frozen g's (a VAE's trace counts epochs and its own adversary's accuracy)
    trace_x = {m: x for m, x in index.methods.trace_axes().items() if m in index.methods.editing()}
    chosen = [c for c in S.sorted_cells(cells) if c.method in trace_x and c.complete]
    if not chosen:
        return "skipped: no complete gezo, rge, spsa or whitebox experiment"
    others = S.varying_keys(chosen, index.cell_keys)
    if args.convergence_cells == "first":  # one curve per method: its first cell in table order
        firsts = {}
        for c in chosen:
            firsts.setdefault(c.method, c)
        if len(firsts) < len(chosen):
            print(f"note: convergence.png: first cell of each method only, {len(chosen) - len(firsts)} "
                  "more with --convergence-cells all")
        chosen = list(firsts.values())
    series, dropped = [], 0
    for c in chosen:
        xname = trace_x[c.method]
        traces = []
        for r in sorted(c.complete, key=lambda r: (r.seed, r.index)):
            t = files.trace(r)
            if all(k in t for k in (xname, "loss", "sa_accuracy")) and t[xname].size:
                traces.append(t)
        if not traces:
            continue
        x = traces[0][xname]
        same = all(t[xname].shape == x.shape and np.array_equal(t[xname], x) for t in traces)
        if same:
            loss = np.mean([t["loss"] for t in traces], axis=0)
            sa = np.mean([t["sa_accuracy"] for t in traces], axis=0)
            how = f"mean of {len(traces)} seeds" if len(traces) > 1 else f"seed {c.complete[0].seed}"
        else:
            loss, sa = traces[0]["loss"], traces[0]["sa_accuracy"]
            how = "first seed"
        label = method_name(c.method) + (f" ({c.label(others)})" if c.label(others) else "") + f", {how}"
        if len(series) >= args.max_lines:
            dropped += 1
            continue
        series.append((c.method, label, x, loss, sa))
    if not series:
        return "skipped: no /trace with loss, sa_accuracy and queries (images for whitebox)"
    if dropped:
        print(f"note: convergence.png: {dropped} more curves not drawn (--max-lines {args.max_lines})")
    finals = [float(s[2][-1]) for s in series if s[2][-1] > 0]
    firsts = [float(np.min(s[2][s[2] > 0])) for s in series if np.any(s[2] > 0)]
    logx = bool(finals) and max(finals) / min(finals) > 20 and bool(firsts)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(WIDTH, 4.6))
    count = {}
    for method, label, x, loss, sa in series:
        k = count.get(method, 0)
        count[method] = k + 1
        kw = dict(color=method_color(index.methods, method), ls=LINESTYLES[k % len(LINESTYLES)], lw=1.4)
        a1.plot(x, loss, label=label, **kw)
        a2.plot(x, sa, label=label, **kw)
    a2.axhline(0.5, color="black", lw=0.8, ls=":", label="chance (0.5)")
    xl = "queries (images sent to the FM" + (", log scale)" if logx else ")")
    for ax in (a1, a2):
        ax.set_xlabel(xl)
        if logx:
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
            ax.xaxis.set_major_locator(mticker.MaxNLocator(5))
    a1.set_ylabel("objective loss on the batch")
    a1.set_title("DNE objective")
    a2.set_ylabel("frozen SA probe accuracy on the batch (0-1)")
    a2.set_title("frozen SA probe g on x + eps")
    handles, labels = _collect_legend((a1, a2))
    _grow_for_legend(fig, labels, 4.0)
    bottom = _bottom_legend(fig, handles, labels)
    fig.suptitle("Convergence (whitebox: forward+backward images; gezo/rge/spsa: API images)")
    fig.tight_layout(rect=(0, bottom, 1, 0.96))
    _save(fig, path, args.dpi)
    return "ok"


# ---------------------------------------------------------------------------------------------
# Queries to target: validation measurements against the queries spent (/progress)
# ---------------------------------------------------------------------------------------------

NOISE_BASIS, NOISE_DIM = "dne.noise_basis", "dne.noise_dim"


def count_label(v: float) -> str:
    """A query count for a tick: 0, 500, 2k, 1.5M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:g}{suffix}"
    return f"{v:g}"


def query_axis(positive, last: float) -> tuple:
    """(linthresh, major ticks, minor ticks, right limit) of the symlog query axis.

    positive: the nonzero query counts measured; last: the largest count to show. The linear
    range ends at the first nonzero count rounded down to a power of ten; the major ticks are 0,
    the powers of ten from there up to `last` and, when `last` is at least twice the largest of
    them, `last` rounded to one significant digit (60k, 500k); the minor ticks are 2..9 times
    each power of ten."""
    positive = [float(q) for q in positive if q > 0]
    if not positive:
        return 1.0, [0.0], [], 1.0
    linthresh = 10.0 ** math.floor(math.log10(min(positive)))
    last = max([last] + positive)
    top = math.floor(math.log10(last) + 1e-9)
    e0 = round(math.log10(linthresh))
    powers = [10.0 ** e for e in range(e0, top + 1)]
    major = [0.0] + powers
    end = float(f"{last:.0e}")  # one significant digit
    if end >= 2 * powers[-1]:
        major.append(end)
    right = max(last, major[-1]) * 10 ** 0.06
    minor = [k * p for p in powers for k in range(2, 10) if k * p < right and k * p not in major]
    return linthresh, major, minor, right


def _noise_token(cell, key):
    """The display value of `key` for a cell, None where the cell has no such setting: not a cell
    key, not read by its method, or the noise dimension of the pixel basis (which ignores it)."""
    if key == "dne.method" or key not in cell.values or not cell.applies(key):
        return None
    if key == NOISE_DIM and str(cell.values.get(NOISE_BASIS)) == "pixel":
        return None
    return S.fmt_value(cell.values[key])


def progress_labels(cells, keys, ns=None) -> list:
    """Legend labels of queries_to_target.png, one per cell (same order).

    The method, then only the settings that differ between that method's cells (keys: the
    index's cell keys, in display order): the noise first and compactly, `dct 16`, `lowres 8`,
    `pixel` (the basis when it differs, and the dimension, with its basis, when it differs between
    the method's non-pixel cells; pixel has none), then `short_key=value` for the other keys, e.g.
    `gezo on_reject=decay sigma_growth=1.5`. A method with a single cell is its name alone.
    `, n=3` follows only when ns (seeds per cell) are not all equal. Labels are unique: cells that
    the rule leaves alike get every key that tells them apart."""
    labels = [""] * len(cells)
    groups = {}
    for i, c in enumerate(cells):
        groups.setdefault(c.method, []).append(i)
    for method, idx in groups.items():
        group = [cells[i] for i in idx]
        vary = [k for k in keys if len({_noise_token(c, k) for c in group} - {None}) > 1]
        for i, c in zip(idx, group):
            parts = []
            if NOISE_BASIS in vary or NOISE_DIM in vary:
                basis = _noise_token(c, NOISE_BASIS)
                dim = _noise_token(c, NOISE_DIM) if NOISE_DIM in vary else None
                if dim is not None and basis is None:
                    dim = f"{S.short_key(NOISE_DIM)}={dim}"
                noise = " ".join(t for t in (basis, dim) if t is not None)
                if noise:
                    parts.append(noise)
            parts += [f"{S.short_key(k)}={_noise_token(c, k)}" for k in vary
                      if k not in (NOISE_BASIS, NOISE_DIM) and _noise_token(c, k) is not None]
            labels[i] = " ".join([method_name(method)] + parts)
    # cells that the rule leaves alike (e.g. pixel cells that differ only in noise_dim)
    alike = {}
    for i, lab in enumerate(labels):
        alike.setdefault(lab, []).append(i)
    for lab, idx in alike.items():
        if len(idx) < 2:
            continue
        group = [cells[i] for i in idx]
        differ = [k for k in keys if k != "dne.method" and k in group[0].values
                  and len({S.fmt_value(c.values.get(k)) for c in group}) > 1]
        for j, i in enumerate(idx):
            extra = " ".join(f"{S.short_key(k)}={S.fmt_value(cells[i].values.get(k))}" for k in differ)
            labels[i] = f"{lab} {extra}" if extra else f"{lab} #{j + 1}"
    if ns is not None and len(set(ns)) > 1:
        labels = [f"{lab}, n={n}" for lab, n in zip(labels, ns)]
    return labels


def _shade(color: str, level: int) -> str:
    """The colour mixed towards black (odd levels) or white (even levels), more with the level."""
    rgb = np.array(matplotlib.colors.to_rgb(color))
    f = min(0.8, 0.25 * ((level + 1) // 2))
    rgb = rgb * (1 - f) if level % 2 else rgb + (1 - rgb) * f
    return matplotlib.colors.to_hex(rgb)


def cell_styles(methods, cell_methods) -> list:
    """(colour, line style, marker) per cell: the colour of its method, then line style and marker
    by its place among the method's cells. No two cells share all three (also not when two methods
    fall on one colour): a taken style moves on to the next; after the 24 (line style, marker)
    pairs the colour is shaded."""
    pairs = len(LINESTYLES) * len(MARKERS)
    taken, out, count = set(), [], {}
    for method in cell_methods:
        base = method_color(methods, method)
        k = count.get(method, 0)
        while True:
            j = k % pairs
            # line style cycles fastest; the marker moves by j // 4 as well, so the 24 pairs differ
            style = (_shade(base, k // pairs) if k >= pairs else base, LINESTYLES[j % len(LINESTYLES)],
                     MARKERS[(j + j // len(LINESTYLES)) % len(MARKERS)])
            k += 1
            if style not in taken:
                break
        count[method] = k
        taken.add(style)
        out.append(style)
    return out


def queries_to_target_figure(index, progress, path, args) -> str:
    """PROGRESS_PANELS against queries (symlog, query_axis), one curve per cell
    (progress_curves.CellProgress: mean, 95% t-band over seeds; legend: progress_labels,
    cell_styles), its control at the final budget as an x with its interval, and a dashed line
    at every white-box cell's final value, in that cell's colour, with its marker at the right."""
    if not progress:
        return "skipped: no complete experiment has /progress (dne.eval_every = 0)"
    others = S.varying_keys([p.cell for p in progress], index.cell_keys)
    for p in progress:
        if not p.same:
            print(f"note: {path.name}: {p.cell.method} ({p.cell.label(others) or 'one cell'}): the seeds' "
                  "queries differ; each is interpolated onto their union within the range all cover")
    positive = [q for p in progress for q in p.grid if q > 0]
    totals = [p.final_stat("queries").mean for p in progress]
    linthresh, major, minor, right = query_axis(positive, max([0.0] + [t for t in totals if np.isfinite(t)]))
    labels_of = progress_labels([p.cell for p in progress], index.cell_keys, [p.n for p in progress])
    styles = cell_styles(index.methods, [p.cell.method for p in progress])
    whitebox = index.methods.of("whitebox")
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 6.0), sharex=True)
    targets = []  # (colour) of the white-box target lines drawn
    for p, label, (color, ls, marker) in zip(progress, labels_of, styles):
        x_end = p.final_stat("queries").mean  # the seeds' totals: where the control was measured
        for ax, (metric, _, _) in zip(axes.ravel(), PROGRESS_PANELS):
            mean, half = p.curve(metric)
            ok = np.isfinite(mean)
            ax.plot(p.grid[ok], mean[ok], color=color, ls=ls, lw=1.5, marker=marker, ms=3.5, label=label)
            band = ok & np.isfinite(half)
            if band.any():
                ax.fill_between(p.grid, mean - half, mean + half, where=band, color=color, alpha=0.18, lw=0)
            c = p.control_stat(metric)
            if np.isfinite(c.mean):
                ax.errorbar([x_end], [c.mean], yerr=[0 if np.isnan(c.half) else c.half], color=color, marker="x",
                            ms=7, mew=1.6, capsize=3, ls="none")
            final = p.final_stat(metric).mean
            if p.cell.method in whitebox and np.isfinite(final):
                ax.axhline(final, color=color, ls="--", lw=0.9, alpha=0.75, zorder=1)
                # the cell's marker on the right edge tells the target lines of one method apart
                edge = mtransforms.blended_transform_factory(ax.transAxes, ax.transData)
                ax.plot([1.0], [final], transform=edge, color=color, marker=marker, ms=4.5, ls="none",
                        clip_on=False, zorder=4)
                targets.append(color)
    for ax, (_, title, ylabel) in zip(axes.ravel(), PROGRESS_PANELS):
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.set_xscale("symlog", linthresh=linthresh, linscale=0.5)
        ax.set_xlim(-0.08 * linthresh, right)
        ax.xaxis.set_major_locator(mticker.FixedLocator(major))
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: count_label(v)))
        ax.xaxis.set_minor_locator(mticker.FixedLocator(minor))
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
        ax.axvline(0, color="#555555", lw=0.8, ls=":")
    for ax in axes[-1]:
        ax.set_xlabel(f"queries (symlog scale, linear below {count_label(linthresh)})")
    handles, labels = _collect_legend(axes.ravel())
    handles += [plt.Line2D([], [], color="#555555", lw=0.8, ls=":"),
                plt.Line2D([], [], color="black", marker="x", ms=7, mew=1.6, ls="none")]
    labels += ["queries 0: no noise (ERM)", "x: random control, final budget"]
    if targets:
        handles.append(plt.Line2D([], [], color=targets[0], lw=0.9, ls="--"))
        labels.append("white-box final value")
    ns = sorted({p.n for p in progress})
    if len(ns) > 1:
        over = "mean, 95% t-band over seeds"
    elif ns[0] > 1:
        over = f"mean, 95% t-band over {ns[0]} seeds"
    else:
        over = "one seed per cell"
    fig.suptitle(f"Queries to target on the validation split ({over})\nqueries: API images of zeroth-order "
                 "editors; white-box: images through the model")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    ncol, rows, _ = _legend_layout(labels, fig.get_figwidth())
    ncol = min(ncol, 2) if len(labels) > 4 else ncol
    # below the panels (and their x labels), spanning the width; saved with bbox_inches="tight"
    bottom = min(ax.get_tightbbox(fig.canvas.get_renderer()).transformed(fig.transFigure.inverted()).y0
                 for ax in axes[-1])
    fig.legend(handles, labels, loc="upper center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, bottom),
               borderaxespad=0.2, columnspacing=1.5, handlelength=2.4)
    fig.savefig(path, dpi=args.dpi, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return "ok"
