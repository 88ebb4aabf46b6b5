#!/usr/bin/python3
"""Is a pretrained foundation model better than a random one? Linear-probe evidence per FM.

Usage: analysis/fm_evidence.py RUN_DIR [--baseline LABEL] [--loss-plot PNG FM_FILE [FM_FILE ...]]

Reads the ERM experiments (dne.method = "none") of RUN_DIR (the files index.h5 lists as complete,
or every RUN_DIR/experiments/*.h5 without an index; docs/results-format.md)
and groups them by foundation model (fm.kind, fm.weights, fm.pool). For each FM it prints, as a
Markdown table, the test-split disease AUC of the linear disease probe (`auc`) and the AUC of the
linear sensitive-attribute probe on clean embeddings (`sa_probe_clean_auc`): mean, sample std and
a 95% t-interval over seeds. With --baseline (an FM label as printed, e.g. "vit random mean"),
it adds the paired difference (FM minus baseline, same seed) with its 95% t-interval; seeds
missing from either side are left out of the pairing. --loss-plot draws the MAE loss curve
(/pretrain/loss) of each FM file into one PNG.
Exit codes: 0 ok, 2 bad input (no experiments, unknown baseline, unreadable file).
"""
import argparse
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np

try:  # run as a script (analysis/ on sys.path) or imported as the analysis package
    from stats import format_interval, interval
except ImportError:
    from .stats import format_interval, interval

METRICS = [("auc", "disease AUC"), ("sa_probe_clean_auc", "SA AUC (clean probe)")]



def fail(message):
    print(f"fm_evidence: {message}", file=sys.stderr)
    sys.exit(2)


def fm_label(cfg):
    fm = cfg.get("fm", {})
    kind = fm.get("kind", "cnn")
    if kind != "vit":
        return kind + " random"
    weights = fm.get("weights", "")
    return f"vit {Path(weights).stem if weights else 'random'} {fm.get('pool', 'mean')}"


def experiment_files(run_dir):
    """The sweep's files: those listed as complete in RUN_DIR/index.h5 when there is one (files of
    earlier configs in the same folder, e.g. made with other FM weights, are left out), else all."""
    index = Path(run_dir, "index.h5")
    if not index.is_file():
        return sorted(Path(run_dir, "experiments").glob("*.h5"))
    try:
        with h5py.File(index, "r") as f:
            names = [n for n in f["experiments/file"].asstr()[:] if n]
    except (OSError, KeyError) as e:
        fail(f"{index}: {e}")
    return sorted(Path(run_dir, n) for n in names)


def load(run_dir):
    """{label: {seed: {metric: value}}} of the ERM experiments."""
    out = defaultdict(dict)
    files = experiment_files(run_dir)
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                cfg = tomllib.loads(f.attrs["config"])
                if cfg.get("dne", {}).get("method") != "none":
                    continue
                seed = int(cfg["sweep"]["seeds"])
                label = fm_label(cfg)
                if seed in out[label]:
                    fail(f"{path}: a second experiment for FM '{label}' and seed {seed} (another axis "
                         "than the FM varies in this run; give a run directory with one experiment per FM and seed)")
                out[label][seed] = {m: float(f["metrics"].attrs[m]) for m, _ in METRICS}
        except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
            fail(f"{path}: {e}")
    if not out:
        fail(f"{run_dir}: no ERM (dne.method = \"none\") experiment files")
    return out


def table(data, baseline):
    head = ["FM", "seeds"] + [name + " mean ± sd [95% CI]" for _, name in METRICS]
    if baseline:
        head += [f"{name}: minus {baseline}, paired [95% CI]" for _, name in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in sorted(data):
        seeds = sorted(data[label])
        row = [label, ",".join(map(str, seeds))]
        row += [format_interval(*interval([data[label][s][m] for s in seeds])) for m, _ in METRICS]
        if baseline:
            common = sorted(set(seeds) & set(data[baseline]))
            for m, _ in METRICS:
                diffs = [data[label][s][m] - data[baseline][s][m] for s in common]
                row.append(format_interval(*interval(diffs)) if diffs and label != baseline else "")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def loss_plot(png, files):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                loss = f["pretrain/loss"][()]
        except (OSError, KeyError) as e:
            fail(f"{path}: no /pretrain/loss ({e})")
        ax.plot(np.arange(1, len(loss) + 1), loss, label=Path(path).stem, linewidth=1)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("MAE loss (hidden patches)")
    ax.set_yscale("log")
    ax.set_title("MAE pretraining of the phantom ViT")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--baseline", help="FM label to pair against (e.g. 'vit random mean')")
    parser.add_argument("--loss-plot", nargs="+", metavar=("PNG", "FM_FILE"),
                        help="PNG path followed by FM files whose /pretrain/loss to draw")
    args = parser.parse_args()
    data = load(args.run_dir)
    if args.baseline and args.baseline not in data:
        fail(f"--baseline '{args.baseline}' is not one of: {', '.join(sorted(data))}")
    print(table(data, args.baseline))
    if args.loss_plot:
        if len(args.loss_plot) < 2:
            fail("--loss-plot needs a PNG path and at least one FM file")
        loss_plot(args.loss_plot[0], args.loss_plot[1:])
        print(f"loss curve: {args.loss_plot[0]}")


if __name__ == "__main__":
    main()
