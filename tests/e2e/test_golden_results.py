"""The same configs give the same experiment ids and the same result files, before and after a
refactor (issue 30's must-show).

tests/e2e/golden/every_method.toml is one small sweep of every method (ERM, random, white-box
with a frozen and a re-fitted adversary, GeZO, RGE, SPSA, NES, the VAE) on the phantom with a
validation split (dne.keep = "best_val", dne.eval_every, probes.l2_choices), a DCT noise basis
and saved embeddings; a second run reads the ERM experiment's saved embeddings back as
data.source = "embeddings" (ERM and the VAE on an embeddings file). The config still names the
zeroth-order keys by their former [gezo] names (now [zo]): the ids prove they keep their ids.

tests/e2e/golden/every_method.json holds, per experiment id, the SHA-256 of every dataset's
bytes (with its dtype and shape) and the exact value of every attribute, as written by the code
*before* the refactor (recorded by the commit that added this file). What a result is must not move: the ids, every number,
every array. What is about the process is left out: the time (root `created`, /timings, the
traces' wall_s columns), the build (git_commit), the machine and libraries (/provenance hostname,
compiler, *_version, mpi_library, torch_threads, bytes_communicated) and the output directory
inside the resolved config text. Recorded again once, on purpose, when the [gezo] keys that every
zeroth-order editor reads moved to [zo]: only the resolved config text (/@config) changed.

The digests are bits of this machine kind's LibTorch CPU kernels; they were recorded on the CI's
machine kind. To record them again after a change that is *meant* to change results, run
`/usr/bin/python3 tests/e2e/test_golden_results.py --record BUILD/dne` and say why in the commit.
"""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "golden" / "every_method.toml"
GOLDEN = HERE / "golden" / "every_method.json"

VOLATILE_ROOT = {"created", "git_commit"}
VOLATILE_PROVENANCE = {"hostname", "compiler", "torch_version", "hdf5_version", "mpi_library", "torch_threads",
                       "bytes_communicated"}


def _env():
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    return env


def _value(v):
    """An attribute's value as exact JSON: floats by repr (round-trips every bit), arrays as lists."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return [_value(x) for x in v.tolist()]
    if isinstance(v, (np.floating, float)):
        return repr(float(v))
    if isinstance(v, (np.integer, int)):
        return int(v)
    return v if isinstance(v, (str, list)) else str(v)


def digest(path, out_dir):
    """{'/group/name@attr': value, '/dataset': 'dtype shape sha256'} of one result file."""
    out = {}
    with h5py.File(path, "r") as f:
        def attrs(name, obj):
            for key, value in obj.attrs.items():
                if name == "/" and key in VOLATILE_ROOT:
                    continue
                if name == "/timings" or (name == "/provenance" and key in VOLATILE_PROVENANCE):
                    continue
                value = _value(value)
                if name == "/" and key == "config":
                    value = value.replace(str(out_dir), "OUT")
                out[f"{name}@{key}"] = value

        def visit(name, obj):
            full = "/" + name
            attrs(full, obj)
            if isinstance(obj, h5py.Dataset) and not full.endswith("/wall_s"):
                data = np.ascontiguousarray(obj[()])
                out[full] = f"{data.dtype.str} {list(data.shape)} {hashlib.sha256(data.tobytes()).hexdigest()}"

        attrs("/", f)
        f.visititems(visit)
    return out


def run_sweeps(dne_bin, out_dir):
    """Both runs of the golden sweep; {id: digest} of every experiment."""
    main = out_dir / "main"
    subprocess.run([dne_bin, "run", "--config", str(CONFIG), "--out", str(main)], check=True, env=_env(),
                   capture_output=True, text=True)
    def method(path):
        with h5py.File(path, "r") as f:  # closed at once: the file is copied from below
            return f.attrs["method"]

    erm = [p for p in (main / "experiments").glob("*.h5") if method(p) == "none"]
    assert len(erm) == 1, erm
    # The ERM experiment's saved embeddings, copied into a file whose bytes do not depend on when it
    # was written (the result file's own attributes do), so that its content hash, and so the ids, hold.
    emb_file = out_dir / "erm_embeddings.h5"
    untimed = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    untimed.set_obj_track_times(False)
    with h5py.File(erm[0], "r") as src, h5py.File(emb_file, "w") as dst:
        top = h5py.Group(h5py.h5g.create(dst.id, b"embeddings", gcpl=untimed))
        for split in ("train", "val", "test"):
            group = h5py.Group(h5py.h5g.create(top.id, split.encode(), gcpl=untimed))
            for name in ("x", "label", "sa", "age"):
                group.create_dataset(name, data=src[f"embeddings/{split}/{name}"][()], track_times=False)
    emb = out_dir / "embeddings"
    subprocess.run([dne_bin, "run", "--config", str(CONFIG), "--out", str(emb), "--set", "data.source=embeddings",
                    "--set", f"data.embeddings={emb_file.name}", "--set", "data.embeddings_group=embeddings",
                    "--set", 'dne.method=["none", "vae"]'], check=True, env=_env(), capture_output=True, text=True,
                   cwd=out_dir)  # the file's name, as written, is in the ids: relative to the run's folder
    result = {}
    for run_dir in (main, emb):
        with h5py.File(run_dir / "index.h5", "r") as index:
            statuses = [s.decode() if isinstance(s, bytes) else s for s in index["experiments/status"][()]]
        assert set(statuses) == {"complete"}, statuses
        for path in sorted((run_dir / "experiments").glob("*.h5")):
            d = digest(path, run_dir)
            if run_dir == emb:  # /provenance names the embeddings file by its absolute path
                d = {k: (v.replace(str(emb_file), "EMB_FILE") if isinstance(v, str) else v) for k, v in d.items()}
            result[path.stem] = d
    return result


def test_ids_and_result_files_unchanged(dne_bin, tmp_path):
    golden = json.loads(GOLDEN.read_text())
    now = run_sweeps(dne_bin, tmp_path)
    assert sorted(now) == sorted(golden), "the experiment ids changed: the same configs must keep their ids"
    for eid in sorted(golden):
        old, new = golden[eid], now[eid]
        missing = sorted(set(old) - set(new))
        added = sorted(set(new) - set(old))
        changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
        assert not (missing or added or changed), (
            f"experiment {eid} ({old.get('/@method')}): missing {missing[:5]}, added {added[:5]}, "
            f"changed {[(k, old[k], new[k]) for k in changed[:5]]}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--record":
        sys.exit("usage: test_golden_results.py --record PATH/TO/dne")
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(json.dumps(run_sweeps(sys.argv[2], Path(tmp)), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
