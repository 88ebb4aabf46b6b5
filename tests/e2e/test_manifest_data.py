"""Real data through `dne run`: manifests checked before the sweep, ids that follow the contents of
every input file, source-specific keys, limits, the image cache, --dry-run (issue 12).

The data are PNG files written by `dne phantom` and by the test; every expectation is written by
hand from the rules in docs/datasets.md, and result files are read back with h5py."""
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from dne_testing import MANIFEST_CONFIG, MANIFEST_SMALL, REPO, SMALL, run_dne

QUICKSTART = REPO / "experiments" / "quickstart.toml"


@pytest.fixture()
def data(phantom_dir, tmp_path):
    """A private copy of the phantom data set (the test may change its files)."""
    copy = tmp_path / "data"
    shutil.copytree(phantom_dir, copy)
    return copy


def run(dne_bin, out, manifest, *extra, ranks=None):
    return run_dne(dne_bin, "run", "--config", MANIFEST_CONFIG, "--out", out, *MANIFEST_SMALL,
                   "--set", f"data.manifest=\"{manifest}\"", *extra, mpi_ranks=ranks)


def experiment_files(out):
    return sorted((out / "experiments").glob("*.h5"))


def test_changed_manifest_byte_is_a_new_experiment(dne_bin, data, tmp_path):
    manifest = data / "manifest.csv"
    out = tmp_path / "out"
    first = run(dne_bin, out, manifest)
    assert first.returncode == 0, first.stderr
    assert "1 run now" in first.stdout
    again = run(dne_bin, out, manifest)
    assert "1 already complete, 0 run now" in again.stdout
    # Flip the sex of one row: one byte of the manifest, same path.
    lines = manifest.read_text().splitlines()
    path, split, sex, label = lines[1].split(",")
    lines[1] = ",".join([path, split, "1" if sex == "0" else "0", label])
    manifest.write_text("\n".join(lines) + "\n")
    changed = run(dne_bin, out, manifest)
    assert changed.returncode == 0, changed.stderr
    assert "0 already complete, 1 run now" in changed.stdout
    files = experiment_files(out)
    assert len(files) == 2
    hashes = set()
    for f in files:
        with h5py.File(f, "r") as h:
            hashes.add(h["provenance"].attrs["data_hash"])
            assert h["provenance"].attrs["data_manifest"] == str(manifest)
            assert "# data content hash: " + h["provenance"].attrs["data_hash"] in h.attrs["config"]
    assert len(hashes) == 2


def test_changed_image_byte_is_a_new_experiment_and_stat_mode_sees_rewrites(dne_bin, data, tmp_path):
    manifest = data / "manifest.csv"
    out = tmp_path / "out"
    assert run(dne_bin, out, manifest).returncode == 0
    image = data / manifest.read_text().splitlines()[5].split(",")[0]
    raw = bytearray(image.read_bytes())
    raw[-13] ^= 0x01  # the last byte of the IDAT chunk's CRC: the bytes differ, stb decodes the same pixels
    image.write_bytes(bytes(raw))
    proc = run(dne_bin, out, manifest)
    assert proc.returncode == 0, proc.stderr
    assert "0 already complete, 1 run now" in proc.stdout


def test_a_phantom_key_with_a_manifest_is_ignored_and_said_once(dne_bin, data, tmp_path):
    """Issue 29: the other source's keys collapse (like method keys) instead of stopping the run:
    the same experiment as without them, one line saying so."""
    out = tmp_path / "out"
    first = run(dne_bin, out, data / "manifest.csv")
    assert first.returncode == 0, first.stderr
    proc = run(dne_bin, out, data / "manifest.csv", "--set", "data.n_train=50", "--set", "data.bias=0.5")
    assert proc.returncode == 0, proc.stderr
    assert "1/1 complete (1 already complete, 0 run now)" in proc.stdout  # the same id
    ignored = [line for line in proc.stdout.splitlines() if line.startswith("# ignored: ")]
    assert ignored == ["# ignored: data.n_train (read only when data.source = phantom): no experiment reads it",
                       "# ignored: data.bias (read only when data.source = phantom): no experiment reads it"], proc.stdout
    # ... and a manifest key with the phantom
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path / "o2", *SMALL,
                   "--set", "data.limit_train=10", "--set", "dne.method=none", "--set", "sweep.seeds=0", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "# ignored: data.limit_train (read only when data.source = manifest): no experiment reads it" in proc.stdout


def test_limits_take_a_stratified_subset_the_same_for_every_seed(dne_bin, data, tmp_path):
    manifest = data / "manifest.csv"
    rows = [l.split(",") for l in manifest.read_text().splitlines()[1:]]
    train = [r for r in rows if r[1] == "train"]
    out = tmp_path / "out"
    proc = run(dne_bin, out, manifest, "--set", "data.limit_train=40", "--set", "data.limit_test=20",
               "--set", "sweep.seeds=[0,1]", "--set", "output.save_embeddings=true")
    assert proc.returncode == 0, proc.stderr
    files = experiment_files(out)
    assert len(files) == 2
    shapes = set()
    for f in files:
        with h5py.File(f, "r") as h:
            shapes.add((h["embeddings/train/x"].shape[0], h["test/score"].shape[0]))
            if "test/sa" in h:
                assert h["test/sa"].shape == (20,)
    assert shapes == {(40, 20)}
    # Every (sa, label) cell keeps its share of the 40 rows (floors, then the largest remainders),
    # drawn from the manifest's own rows of that cell; one cache serves both seeds: one subset.
    cells = {}
    for r in train:
        cells.setdefault((int(r[2]), int(r[3])), []).append(str(data / r[0]))
    exact = {c: 40 * len(v) / len(train) for c, v in cells.items()}
    want = {c: int(e) for c, e in exact.items()}
    for c in sorted(exact, key=lambda c: (-(exact[c] - int(exact[c])), 2 * c[0] + c[1]))[:40 - sum(want.values())]:
        want[c] += 1
    (cache,) = sorted((out / "cache").glob("images-*.h5"))
    with h5py.File(cache, "r") as h:
        sources = [s.decode() for s in h["train/source"][:]]
        got = {}
        for src, sa, y in zip(sources, h["train/sa"][:], h["train/label"][:]):
            assert src in cells[(int(sa), int(y))]
            got[(int(sa), int(y))] = got.get((int(sa), int(y)), 0) + 1
        assert h["test/pixels"].shape[0] == 20
    assert got == want
    order = [str(data / r[0]) for r in train]
    assert sources == sorted(sources, key=order.index)  # file order kept


def test_image_cache_decodes_once_per_run(dne_bin, data, tmp_path):
    manifest = data / "manifest.csv"
    out = tmp_path / "out"
    proc = run(dne_bin, out, manifest, "--set", "sweep.seeds=[0,1]")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("# data: ") == 1 and "decoded to 64x64 (stretch, 8-bit samples)" in proc.stdout
    (cache,) = sorted((out / "cache").glob("images-*.h5"))
    with h5py.File(cache, "r") as h:
        assert h["train/pixels"].shape == (120, 64, 64) and h["test/pixels"].shape == (80, 64, 64)
        assert h["val/pixels"].shape == (0, 64, 64)
        first = h["train/source"][0].decode()
        assert first.endswith("train/000000.png")
        labels = h["train/label"][:]
    want = [int(l.split(",")[3]) for l in manifest.read_text().splitlines()[1:] if l.split(",")[1] == "train"]
    assert list(labels) == want
    # A new seed in the same run directory reuses the cache: no decoding line.
    proc = run(dne_bin, out, manifest, "--set", "sweep.seeds=[0,1,2]")
    assert proc.returncode == 0 and "# data: " not in proc.stdout and "1 run now" in proc.stdout


def test_image_cache_is_the_files_pixels_and_the_same_from_one_or_two_ranks(dne_bin, data, tmp_path):
    """The cache holds uint8 samples; at the files' own size they are the PNGs' bytes as Pillow
    decodes them; resized, 1 and 2 ranks (each decoding every other row) write the same bytes."""
    from PIL import Image
    manifest = data / "manifest.csv"
    caches = {}
    for ranks, size in ((None, 64), (None, 32), (2, 32)):
        out = tmp_path / f"out-{ranks}-{size}"
        proc = run(dne_bin, out, manifest, "--set", f"data.image_size={size}", "--set", "fm.patch_size=8", ranks=ranks)
        assert proc.returncode == 0, proc.stderr
        assert f"on {ranks or 1} rank(s)" in proc.stdout
        (cache,) = sorted((out / "cache").glob("images-*.h5"))
        assert not list((out / "cache").glob("*.tmp.*"))
        with h5py.File(cache, "r") as h:
            assert h.attrs["format"] == 2 and h.attrs["pixel_bits"] == 8
            caches[(ranks, size)] = {s: (h[f"{s}/pixels"][()], [x.decode() for x in h[f"{s}/source"][()]])
                                     for s in ("train", "val", "test")}
    for split in ("train", "test"):
        pixels, sources = caches[(None, 64)][split]
        assert pixels.dtype == np.uint8 and len(sources) == pixels.shape[0] > 0
        for i in range(0, len(sources), 7):
            np.testing.assert_array_equal(pixels[i], np.asarray(Image.open(sources[i]).convert("L")))
    for split in ("train", "val", "test"):
        one, two = caches[(None, 32)][split], caches[(2, 32)][split]
        assert one[1] == two[1]
        np.testing.assert_array_equal(one[0], two[0])


@pytest.mark.parametrize("ranks", [None, 2])
def test_undecodable_images_name_the_first_row_whichever_rank_meets_it(dne_bin, data, tmp_path, ranks):
    """Rows 1 and 2 are broken (with 2 ranks, rank 1 decodes row 1 and rank 0 row 2): the job ends
    with one line naming line 3 of the CSV (row 1, the header is line 1), and leaves no cache or
    temporary file."""
    manifest = data / "manifest.csv"
    rows = manifest.read_text().splitlines()
    for k in (1, 2):
        (data / rows[1 + k].split(",")[0]).write_bytes(b"\x89PNG\r\n\x1a\n but nothing follows %d" % k)
    out = tmp_path / "out"
    proc = run(dne_bin, out, manifest, ranks=ranks)
    assert proc.returncode == 2, proc.stderr
    errors = [l for l in proc.stderr.splitlines() if "manifest.csv:" in l]
    assert errors and all("manifest.csv:3: " in l for l in errors), proc.stderr
    assert not (out / "cache").exists() or not list((out / "cache").iterdir())
    assert not experiment_files(out)


def test_manifest_val_rows_are_the_validation_split(dne_bin, data, tmp_path):
    manifest = data / "manifest.csv"
    lines = manifest.read_text().splitlines()
    # the first 20 train rows become val rows
    n = 0
    for i in range(1, len(lines)):
        p = lines[i].split(",")
        if p[1] == "train" and n < 20:
            p[1] = "val"
            lines[i] = ",".join(p)
            n += 1
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    proc = run(dne_bin, out, manifest, "--set", "probes.l2_choices=\"1e-3,1e-1\"")
    assert proc.returncode == 0, proc.stderr
    (f,) = experiment_files(out)
    with h5py.File(f, "r") as h:
        assert h["selection/val_auc"].shape == (2,)
    # data.val_fraction with val rows: refused before the sweep
    proc = run(dne_bin, tmp_path / "o2", manifest, "--set", "data.val_fraction=0.1")
    assert proc.returncode == 2 and "val_fraction" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_dry_run_lists_experiments_and_writes_nothing(dne_bin, data, tmp_path):
    out = tmp_path / "out"
    proc = run(dne_bin, out, data / "manifest.csv", "--set", "sweep.seeds=[0,1,2]", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    rows = [l for l in proc.stdout.splitlines() if l and not l.startswith("#") and not l.startswith("id ")]
    assert len(rows) == 3
    assert all("to run" in r and "sweep.seeds=" in r for r in rows)
    assert not out.exists()
    # after a real run the same dry run says complete, with the same ids
    assert run(dne_bin, out, data / "manifest.csv", "--set", "sweep.seeds=[0,1,2]").returncode == 0
    again = run(dne_bin, out, data / "manifest.csv", "--set", "sweep.seeds=[0,1,2]", "--dry-run")
    done = [l for l in again.stdout.splitlines() if " complete " in l]
    assert len(done) == 3
    assert sorted(l.split()[0] for l in done) == sorted(p.stem for p in experiment_files(out))


def test_small_images_down_to_16_pixels(dne_bin, data, tmp_path):
    proc = run(dne_bin, tmp_path / "out", data / "manifest.csv", "--set", "data.image_size=16",
               "--set", "fm.patch_size=4")
    assert proc.returncode == 0, proc.stderr
    (f,) = experiment_files(tmp_path / "out")
    with h5py.File(f, "r") as h:
        assert h["noise"].shape == (16, 16)
    # the phantom cannot draw 16 pixels: one line
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path / "o2", *SMALL,
                   "--set", "data.image_size=16", "--set", "fm.patch_size=4")
    assert proc.returncode == 2 and "at least 32" in proc.stderr


def test_stat_mode_follows_rewrites_not_bytes_changed_in_place(dne_bin, data, tmp_path):
    import os
    manifest = data / "manifest.csv"
    out = tmp_path / "out"
    stat = ["--set", "data.image_hash=stat"]
    assert run(dne_bin, out, manifest, *stat).returncode == 0
    image = data / manifest.read_text().splitlines()[5].split(",")[0]
    st = os.stat(image)
    # a byte changed in place, size and modification time restored: stat mode cannot see it
    raw = bytearray(image.read_bytes())
    raw[-13] ^= 0x01  # the last byte of the IDAT chunk's CRC: stb does not check it, the pixels stay
    image.write_bytes(bytes(raw))
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    proc = run(dne_bin, out, manifest, *stat)
    assert "1 already complete, 0 run now" in proc.stdout, proc.stdout
    # ... but a rewrite does (the content mode sees the byte: test_changed_image_byte_...)
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    proc = run(dne_bin, out, manifest, *stat)
    assert "0 already complete, 1 run now" in proc.stdout


def fnv1a64(data: bytes) -> str:
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def test_torchscript_file_bytes_enter_the_id(dne_bin, tmp_path):
    import subprocess
    import sys
    script = tmp_path / "enc.pt"
    make = (
        "import torch, sys\n"
        "class Enc(torch.nn.Module):\n"
        "    def __init__(self, s):\n"
        "        super().__init__()\n"
        "        torch.manual_seed(s)\n"
        "        self.lin = torch.nn.Linear(64 * 64, 16)\n"
        "    def forward(self, x):\n"
        "        return torch.tanh(self.lin(x.flatten(1)))\n"
        "torch.jit.script(Enc(int(sys.argv[2]))).save(sys.argv[1])\n")
    py = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    maker = tmp_path / "make_encoder.py"  # torch.jit.script reads the class's source from a file
    maker.write_text(make)
    subprocess.run([py, str(maker), str(script), "0"], check=True)
    out = tmp_path / "out"
    args = ["run", "--config", QUICKSTART, "--out", out, *SMALL, "--set", "fm.kind=torchscript",
            "--set", f"fm.torchscript=\"{script}\"", "--set", "dne.method=none", "--set", "sweep.seeds=0"]
    first = run_dne(dne_bin, *args)
    assert first.returncode == 0, first.stderr
    (f,) = experiment_files(out)
    with h5py.File(f, "r") as h:
        assert h["provenance"].attrs["fm_hash"] == fnv1a64(script.read_bytes())
        assert "# fm.torchscript content hash: " + fnv1a64(script.read_bytes()) in h.attrs["config"]
    assert "1 already complete" in run_dne(dne_bin, *args).stdout
    subprocess.run([py, str(maker), str(script), "1"], check=True)  # other weights, same path
    again = run_dne(dne_bin, *args)
    assert again.returncode == 0 and "0 already complete, 1 run now" in again.stdout
    assert len(experiment_files(out)) == 2


def test_dicom_manifest_runs_with_the_right_polarity(dne_bin, tmp_path):
    # 40 MONOCHROME1 DICOM files (12-bit, rescale slope 2, intercept -100) written by the test's
    # own encoder; the run's image cache must hold, for every image, min-max of the modality values
    # inverted (MONOCHROME1: high stored values are dark), computed here with numpy.
    from dicom_writer import write_dicom
    rng = np.random.default_rng(7)
    folder = tmp_path / "dicom"
    folder.mkdir()
    lines, expected = ["path,split,sex,label"], {"train": [], "test": []}
    for i in range(40):
        split = "train" if i < 28 else "test"
        stored = rng.integers(0, 4096, size=(32, 32))
        write_dicom(folder / f"im{i:02d}.dcm", stored, photometric="MONOCHROME1", slope=2, intercept=-100,
                    bits_stored=12)
        modality = stored * 2.0 - 100.0
        scaled = (modality - modality.min()) / (modality.max() - modality.min())
        expected[split].append(1.0 - scaled)
        lines.append(f"im{i:02d}.dcm,{split},{i % 2},{(i // 2) % 2}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    proc = run(dne_bin, out, folder / "manifest.csv", "--set", "data.image_size=32", "--set", "fm.patch_size=8")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no library chatter on stderr
    (cache,) = sorted((out / "cache").glob("images-*.h5"))
    with h5py.File(cache, "r") as h:
        assert h.attrs["pixel_bits"] == 16 and h["train/pixels"].dtype == np.uint16  # DICOM: 16-bit samples
        for split in ("train", "test"):  # stored as round(65535 v): within half a step
            np.testing.assert_allclose(h[f"{split}/pixels"][()] / 65535.0, np.array(expected[split]), atol=0.5 / 65535 + 1e-7)


def test_label_poisoning_is_recorded(dne_bin, data, tmp_path):
    manifest = data / "manifest.csv"
    rows = [l.split(",") for l in manifest.read_text().splitlines()[1:]]
    group1 = [i for i, r in enumerate(r for r in rows if r[1] == "train") if r[2] == "1"]
    out = tmp_path / "out"
    proc = run(dne_bin, out, manifest, "--set", "data.poison_rate=0.25", "--set", "data.poison_group=1")
    assert proc.returncode == 0, proc.stderr
    (f,) = experiment_files(out)
    with h5py.File(f, "r") as h:
        index = list(h["poison/index"][()])
        assert h["poison"].attrs["rate"] == 0.25 and h["poison"].attrs["group"] == 1
    assert len(index) == int(0.25 * len(group1) + 0.5) and set(index) <= set(group1)  # llround
    assert index == sorted(index)
