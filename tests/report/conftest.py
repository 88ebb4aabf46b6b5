"""pytest set-up for the report tests (analysis/report.py).

Makes the repository root and tests/pylib importable, and provides builders that write a sweep
run directory by hand with h5py, in the documented layout: RUN_DIR/index.h5 (schema 1, see
docs/results-format.md) and RUN_DIR/experiments/<id>.h5 (docs/results-format.md).
"""
import struct
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
for p in (REPO, REPO / "tests" / "pylib"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from analysis import dne_metrics  # noqa: E402
from dne_testing import dne_bin  # noqa: E402,F401  (fixture)

STR = h5py.string_dtype("utf-8")
# Always present under /experiments/axes, whatever the sweep axes are.
ALWAYS_AXES = ("dne.method", "dne.lambda", "gezo.local_epochs", "sweep.seeds")
AXIS_DEFAULTS = {"dne.lambda": 1e-3, "gezo.local_epochs": 2.0}
# /key_methods/<key> as dne writes it (from its key table): the methods that read each key.
ALL_METHODS = ("none", "random", "whitebox", "gezo", "rge", "spsa")
KEY_METHODS = {"dne.lambda": ("whitebox", "gezo", "rge", "spsa"), "gezo.local_epochs": ("gezo",)}
EXTRA_METRICS = ("frozen_sa_accuracy", "frozen_sa_auc", "sa_leakage_auc", "sa_leakage_accuracy",
                 "sa_probe_clean_accuracy", "sa_probe_clean_auc", "noise_l2", "noise_linf")
TRACE_X = {"whitebox": "images", "gezo": "queries", "rge": "queries", "spsa": "queries"}
H = W = 16


def scores_for(correct, label):
    """Scores whose 0.5-threshold predictions are right exactly where `correct` is true.

    Varied values so that the AUC is not trivial: right positives 0.9/0.8, right negatives
    0.1/0.2, wrong positives 0.3, wrong negatives 0.7.
    """
    out = []
    for i, (c, y) in enumerate(zip(correct, label)):
        if y == 1:
            out.append((0.9 if i % 2 else 0.8) if c else 0.3)
        else:
            out.append((0.1 if i % 2 else 0.2) if c else 0.7)
    return np.array(out, dtype=np.float64)


def write_experiment(run_dir, exp_id, *, method, seed, score, label, sa, metric_overrides=None,
                     queries=0, examples=True, trace_steps=5, editor_status="complete", noise_scale=0.1):
    """Write RUN_DIR/experiments/<id>.h5; returns its /metrics dict (recomputed + extras)."""
    path = Path(run_dir) / "experiments" / f"{exp_id}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    score = np.asarray(score, dtype=np.float64)
    metrics = dne_metrics.classification_metrics(score, label, sa)
    rng = np.random.default_rng(seed + 17 * len(method))
    noise = np.zeros((H, W), np.float32) if method in ("none",) else \
        (noise_scale * rng.standard_normal((H, W))).astype(np.float32)
    metrics.update({"frozen_sa_accuracy": 0.5 + 0.01 * seed, "frozen_sa_auc": 0.55,
                    "sa_leakage_auc": 0.6, "sa_leakage_accuracy": 0.58,
                    "sa_probe_clean_accuracy": 0.9, "sa_probe_clean_auc": 0.95,
                    "noise_l2": float(np.linalg.norm(noise)), "noise_linf": float(np.abs(noise).max())})
    metrics.update(metric_overrides or {})
    with h5py.File(path, "w") as f:
        f.attrs["id"] = exp_id
        f.attrs["config"] = f'[dne]\nmethod = "{method}"\n'
        f.attrs["status"] = editor_status
        f.attrs["seed"] = np.int64(seed)
        f.attrs["method"] = method
        f.attrs["git_commit"] = "test"
        f.attrs["created"] = "2025-01-01T00:00:00Z"
        f.attrs["schema_version"] = np.int64(1)
        f.create_group("provenance").attrs["queries"] = np.int64(queries)
        f.create_dataset("noise", data=noise)
        f.create_dataset("test/score", data=score)
        f.create_dataset("test/label", data=np.asarray(label, np.int32))
        f.create_dataset("test/sa", data=np.asarray(sa, np.int32))
        g = f.create_group("metrics")
        for k, v in metrics.items():
            g.attrs[k] = np.float64(v)
        if method in TRACE_X and trace_steps:
            t = np.arange(trace_steps, dtype=np.float64)
            f.create_dataset(f"trace/{TRACE_X[method]}", data=(t + 1) * max(queries, 1) / trace_steps)
            f.create_dataset("trace/loss", data=-0.5 * np.log1p(t) - 0.1 * seed)
            f.create_dataset("trace/sa_accuracy", data=0.9 - 0.4 * t / max(trace_steps - 1, 1))
            f.create_dataset("trace/step", data=t)
        if examples:
            yy, xx = np.mgrid[0:H, 0:W] / (H - 1)
            imgs = np.stack([(0.2 + 0.2 * k) * (1 - yy) + 0.3 * xx for k in range(4)]).astype(np.float32)
            f.create_dataset("examples/images", data=imgs)
            f.create_dataset("examples/sa", data=np.array([0, 0, 1, 1], np.int32))
            f.create_dataset("examples/label", data=np.array([0, 1, 0, 1], np.int32))
    return metrics


def write_index(run_dir, rows, axes, metric_names=None, seed_key="sweep.seeds", **attr_overrides):
    """Write RUN_DIR/index.h5 in the schema-1 layout.

    rows: dicts with id, status, method, seed, axes ({key: value}), and optionally error,
    editor_status, wall_s, queries, metrics ({name: value}), ranks, resumed. seed_key: the name
    of the seed's axis key (docs/results-format.md: sweep.seeds; sweep.seed is accepted too).
    """
    run_dir = Path(run_dir)
    names = metric_names or list(dne_metrics.classification_metrics([0.1, 0.9], [0, 1], [0, 1])) + list(EXTRA_METRICS)
    names = names + sorted({m for r in rows for m in r.get("metrics", {}) if m not in names})  # e.g. control_*
    n = len(rows)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("complete", "failed", "running", "pending")}
    with h5py.File(run_dir / "index.h5", "w") as f:
        attrs = {"schema_version": np.int64(1), "config_origin": "tests/report (hand-built)",
                 "total": np.int64(n), "finished": np.int64(0 if counts["running"] + counts["pending"] else 1),
                 "updated": "2025-01-01T00:00:00Z", "elapsed_s": np.float64(12.5), "world_size": np.int64(2),
                 "ranks_per_experiment": np.int64(1), "groups": np.int64(2),
                 **{k: np.int64(v) for k, v in counts.items()}}
        attrs.update(attr_overrides)
        for k, v in attrs.items():
            f.attrs[k] = v
        f.create_dataset("axes", data=np.array(list(axes), dtype=object), dtype=STR, shape=(len(axes),))
        e = f.create_group("experiments")
        complete = [r["status"] == "complete" for r in rows]

        def strings(name, values):
            e.create_dataset(name, data=np.array(values, dtype=object), dtype=STR, shape=(n,))

        strings("id", [r["id"] for r in rows])
        strings("status", [r["status"] for r in rows])
        strings("error", [r.get("error", "") for r in rows])
        strings("file", [f"experiments/{r['id']}.h5" if c else "" for r, c in zip(rows, complete)])
        strings("method", [r["method"] for r in rows])
        strings("editor_status", [r.get("editor_status", "complete" if c else "") for r, c in zip(rows, complete)])
        e.create_dataset("seed", data=np.array([r["seed"] for r in rows], np.int64))
        e.create_dataset("wall_s", data=np.array([r.get("wall_s", 1.0 if c else np.nan)
                                                  for r, c in zip(rows, complete)], np.float64))
        e.create_dataset("queries", data=np.array([r.get("queries", 0) if c else -1
                                                   for r, c in zip(rows, complete)], np.int64))
        e.create_dataset("ranks", data=np.array([r.get("ranks", 1 if r["status"] in ("complete", "failed") else 0)
                                                 for r in rows], np.int32))
        e.create_dataset("resumed", data=np.array([r.get("resumed", 0) for r in rows], np.int32))
        always = [seed_key if k == "sweep.seeds" else k for k in ALWAYS_AXES]
        keys = list(axes) + [k for k in always if k not in axes]
        for k in keys:
            values = []
            for r in rows:
                if k == "dne.method":
                    values.append(r["method"])
                elif k == seed_key:
                    values.append(float(r["seed"]))
                else:
                    values.append(r["axes"].get(k, AXIS_DEFAULTS.get(k, 0.0)))
            if all(isinstance(v, str) for v in values):
                e.create_dataset(f"axes/{k}", data=np.array(values, dtype=object), dtype=STR, shape=(n,))
            else:
                e.create_dataset(f"axes/{k}", data=np.array(values, np.float64))
        for k in keys:
            methods = KEY_METHODS.get(k, ALL_METHODS)
            f.create_dataset(f"key_methods/{k}", data=np.array(methods, dtype=object), dtype=STR,
                             shape=(len(methods),))
        for m in names:
            e.create_dataset(f"metrics/{m}", data=np.array(
                [r.get("metrics", {}).get(m, np.nan) if c else np.nan for r, c in zip(rows, complete)], np.float64))
        links = f.create_group("links")
        for r, c in zip(rows, complete):
            if c:
                links[r["id"]] = h5py.ExternalLink(f"experiments/{r['id']}.h5", "/")


# The hand-computed sweep: axes dne.method x dne.lambda x sweep.seeds, 8 test images per
# experiment, 2 in each (sa, label) cell. Cell order of the test vectors: a0y0 a0y0 a0y1 a0y1
# a1y0 a1y0 a1y1 a1y1.
LABEL = [0, 0, 1, 1, 0, 0, 1, 1]
SA = [0, 0, 0, 0, 1, 1, 1, 1]
ALL_RIGHT = [True] * 8


def wrong(*positions):
    return [i not in positions for i in range(8)]


# (id, method, lambda, seed, status, which predictions are right, queries, error)
HAND_SWEEP = [
    # ERM: seed 0 misses one a1y1 -> acc 7/8, eo_p |0.5 - 1| = 0.5
    #      seed 1 misses one a0y1 and one a1y1 -> acc 6/8, eo_p |0.5 - 0.5| = 0
    ("e000000000000000", "none", 1e-3, 0, "complete", wrong(6), 0, ""),
    ("e000000000000001", "none", 1e-3, 1, "complete", wrong(2, 6), 0, ""),
    # whitebox lambda 0: seed 0 all right (acc 1, eo_p 0); seed 1 misses one a0y0 (acc 7/8, eo_p 0, eo_n 0.5)
    ("a000000000000000", "whitebox", 0.0, 0, "complete", ALL_RIGHT, 400, ""),
    ("a000000000000001", "whitebox", 0.0, 1, "complete", wrong(0), 400, ""),
    # whitebox lambda 0.1: seed 0 misses one a1y0 and one a1y1 (acc 6/8, eo_p 0.5); seed 1 failed
    ("b000000000000000", "whitebox", 0.1, 0, "complete", wrong(4, 7), 400, ""),
    ("b000000000000001", "whitebox", 0.1, 1, "failed", None, 0, "NumericError: loss is NaN at step 3"),
    # gezo lambda 0: both seeds miss one a0y0 (acc 7/8, eo_p 0, eo_n 0.5)
    ("c000000000000000", "gezo", 0.0, 0, "complete", wrong(1), 1000, ""),
    ("c000000000000001", "gezo", 0.0, 1, "complete", wrong(1), 1000, ""),
    # gezo lambda 0.1: one running, one pending
    ("d000000000000000", "gezo", 0.1, 0, "running", None, 0, ""),
    ("d000000000000001", "gezo", 0.1, 1, "pending", None, 0, ""),
]
HAND_AXES = ["dne.method", "dne.lambda", "sweep.seeds"]
# The norm-matched random control of whitebox lambda 0 (index.h5's control_<metric> columns).
HAND_CONTROL = {"a000000000000000": {"control_accuracy": 0.75, "control_eo_p": 0.5},
                "a000000000000001": {"control_accuracy": 0.875, "control_eo_p": 0.0}}


def build_hand_sweep(run_dir, *, examples=True, metric_overrides=None, index_overrides=None):
    """Write the HAND_SWEEP run directory. metric_overrides: {id: {metric: value}} written into
    that experiment's /metrics; index_overrides: {id: {metric: value}} written into index.h5 only."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for exp_id, method, lam, seed, status, right, queries, error in HAND_SWEEP:
        row = {"id": exp_id, "method": method, "seed": seed, "status": status, "error": error,
               "axes": {"dne.lambda": lam}, "queries": queries, "wall_s": 2.0 + seed}
        if status == "complete":
            over = (metric_overrides or {}).get(exp_id)
            metrics = write_experiment(run_dir, exp_id, method=method, seed=seed,
                                       score=scores_for(right, LABEL), label=LABEL, sa=SA,
                                       metric_overrides=over, queries=queries, examples=examples)
            row["metrics"] = {**metrics, **HAND_CONTROL.get(exp_id, {}), **(index_overrides or {}).get(exp_id, {})}
        rows.append(row)
    write_index(run_dir, rows, HAND_AXES)
    return run_dir


def png_size(path):
    """(width, height) of a valid PNG; decodes the whole image to prove it is not truncated."""
    import matplotlib.image
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].std() > 0.01, f"{path} is blank"
    return width, height


@pytest.fixture(scope="session")
def report_h5():
    """The builders above, for the tests (imported through a fixture rather than
    `from conftest import ...`, which breaks when several suites' conftests share a session)."""
    return SimpleNamespace(
        REPO=REPO, LABEL=LABEL, SA=SA, scores_for=scores_for, write_experiment=write_experiment,
        write_index=write_index, build_hand_sweep=build_hand_sweep, png_size=png_size)

