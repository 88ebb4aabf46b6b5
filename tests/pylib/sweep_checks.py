"""What a stopped or finished sweep's output directory must show, read back with h5py: shared by
the signal tests (tests/reliability) and the Slurm tests (tests/slurm)."""
import h5py


def index_state(out):
    """(root attributes, [(id, status, file)]) of out/index.h5."""
    with h5py.File(out / "index.h5", "r") as f:
        attrs = dict(f.attrs)
        rows = list(zip((s.decode() for s in f["experiments/id"][:]), (s.decode() for s in f["experiments/status"][:]),
                        (s.decode() for s in f["experiments/file"][:])))
    return attrs, rows


def read_whole(path):
    """Every dataset of an HDF5 file read back (a truncated or half-written file fails here)."""
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: obj[...] if isinstance(obj, h5py.Dataset) else None)


def assert_stopped_cleanly(out, signal_name):
    """index.h5 finished and naming the signal, no row running, files exactly for the complete
    rows (each fully readable), no temporary file anywhere; returns the complete ids."""
    attrs, rows = index_state(out)
    assert attrs["finished"] == 1 and attrs["stopped_by"] == signal_name, attrs
    statuses = [status for _, status, _ in rows]
    assert "running" not in statuses and "failed" not in statuses, statuses
    assert "pending" in statuses, "the signal came too late to prove anything"
    complete = {rid for rid, status, _ in rows if status == "complete"}
    on_disk = {p.stem for p in (out / "experiments").glob("*.h5")}
    assert on_disk == complete, (on_disk, complete)
    for rid in complete:
        read_whole(out / "experiments" / f"{rid}.h5")
    temporaries = [p for p in out.rglob("*") if ".tmp." in p.name]
    assert not temporaries, temporaries
    assert (attrs["complete"], attrs["pending"], attrs["running"]) == (len(complete), len(rows) - len(complete), 0)
    return complete


def results(out):
    """id -> (metrics, noise) of every experiment file."""
    found = {}
    for path in sorted((out / "experiments").glob("*.h5")):
        with h5py.File(path, "r") as f:
            found[path.stem] = (dict(f["metrics"].attrs), f["noise"][...])
    return found
