"""A corrupted result file (issue 15, audit row 13): every numeric dataset carries a Fletcher-32 checksum,
resume reads every dataset and recomputes a file that fails (saying so), and `dne inspect` reports
the corruption with exit 2. The corruption is made here: one byte of a dataset's stored chunk,
found through h5py, is flipped; h5py itself must then refuse the dataset too."""
import h5py
import numpy as np
import pytest

from dne_testing import SMALL, run_dne


def flip_byte_in(path, dataset):
    """Flip one byte in the middle of `dataset`'s stored data; returns the file offset."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        assert ds.chunks is not None and ds.fletcher32  # written chunked, with a checksum
        info = ds.id.get_chunk_info(0)
        offset = info.byte_offset + info.size // 2
    with open(path, "r+b") as raw:
        raw.seek(offset)
        byte = raw.read(1)
        raw.seek(offset)
        raw.write(bytes([byte[0] ^ 0x5A]))
    return offset


@pytest.fixture
def finished(dne_bin, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[dne]\nmethod = "none"\n[output]\ndir = "{tmp_path / "out"}"\nsave_embeddings = true\n')
    proc = run_dne(dne_bin, "run", "--config", cfg, *SMALL)
    assert proc.returncode == 0, proc.stderr
    [path] = (tmp_path / "out" / "experiments").glob("*.h5")
    return cfg, path


def test_every_dataset_has_a_checksum(finished):
    _, path = finished
    with h5py.File(path, "r") as f:
        datasets = []
        f.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        assert datasets
        for ds in datasets:
            numeric = ds.dtype.kind in "fiub"  # HDF5 allows no filter on variable-length strings
            assert ds.size == 0 or ds.shape == () or not numeric or ds.fletcher32, ds.name


def test_corrupt_file_is_recomputed_on_resume_and_inspect_says_exit_2(dne_bin, finished):
    cfg, path = finished
    with h5py.File(path, "r") as f:
        good = f["embeddings/train/x"][...]
    flip_byte_in(path, "embeddings/train/x")
    with h5py.File(path, "r") as f, pytest.raises(OSError):
        f["embeddings/train/x"][...]  # an independent reader sees it too
    inspect = run_dne(dne_bin, "inspect", path)
    assert inspect.returncode == 2
    lines = [line for line in inspect.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is corrupt" in lines[0] and "/embeddings/train/x" in lines[0], inspect.stderr
    proc = run_dne(dne_bin, "run", "--config", cfg, *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert "is corrupt" in proc.stdout and "computing it again" in proc.stdout
    assert "1 run now" in proc.stdout
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["embeddings/train/x"][...], good)  # recomputed: the same bits
    assert run_dne(dne_bin, "inspect", path).returncode == 0


def test_inspect_never_crashes_on_randomly_corrupted_files(dne_bin, finished, tmp_path):
    """The audit's fuzz: `dne inspect` crashed inside HDF5 on 1 of 60 randomly corrupted files. Each
    copy here gets 8 random bytes overwritten (seeded), or is cut short: inspect must print the
    file (exit 0: the damage hit unused or unchecked bytes) or one error line (exit 2), never die
    by a signal or with an internal error. A failed dataset read reports HDF5's whole stack."""
    _, path = finished
    original = path.read_bytes()
    rng = np.random.default_rng(15)
    outcomes = {0: 0, 2: 0}
    stacks = 0
    for trial in range(60):
        data = bytearray(original)
        if trial % 10 == 9:
            data = data[: int(rng.integers(64, len(data)))]
        else:
            for at in rng.integers(0, len(data), size=8):
                data[at] = int(rng.integers(0, 256))
        victim = tmp_path / f"corrupt{trial}.h5"
        victim.write_bytes(bytes(data))
        proc = run_dne(dne_bin, "inspect", victim, timeout=120)
        assert proc.returncode in (0, 2), (trial, proc.returncode, proc.stderr[-2000:])
        if proc.returncode == 2:
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("dne: store error: "), (trial, proc.stderr)
            stacks += " #1 " in lines[0] and "[" in lines[0]
        outcomes[proc.returncode] += 1
    assert outcomes[2] >= 10, outcomes  # the damage is real: most copies are refused
    assert stacks > 0, "no refusal carried HDF5's error stack"
