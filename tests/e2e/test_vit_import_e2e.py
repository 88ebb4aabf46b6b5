"""End to end: a timm-layout ViT checkpoint -> scripts/import_vit.py -> `dne run` with fm.kind = "vit".

A small random ViT (tests/pylib/ref_vit.py) is saved as an MAE-style checkpoint (decoder keys
inside `model`, dropped by the importer), imported into an FM file, and run by the C++ encoder on
40 grayscale PNGs listed in a manifest. With dne.method = "none" the noise is zero, so the saved
/embeddings/{train,test} are the clean embeddings, in manifest order within each split; they must
equal ref_vit.forward (float64) on the same decoded PNGs within 1e-5, for pool "cls" and "mean".
A truncated or non-HDF5 FM file, and an FM file whose depth differs from fm.depth, are model
errors: exit 2, one stderr line naming the problem, no experiment file.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from dne_testing import REPO, run_dne

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")
import ref_vit  # noqa: E402  (tests/pylib, put on sys.path by conftest.py)

IMPORTER = REPO / "scripts" / "import_vit.py"
ARCH = dict(image_size=32, patch=8, in_chans=3, width=48, depth=2, heads=3, mlp_ratio=4.0)
# Weights N(0, 0.05^2): attention far from uniform, so that a wrong head split, q/k order or
# scale moves the embedding by >> 1e-5 (tests/python/test_ref_vit.py), while a float32
# evaluation stays within a few 1e-6 of the float64 reference.
WEIGHT_STD = 0.05
MEAN, STD = "0.4,0.45,0.5", "0.2,0.25,0.3"
TOLERANCE = 1e-5
N_PER_SPLIT = 20


def structured_image(rng, size=32):
    """A smooth gradient, one bright or dark blob, a few edges and pixel noise, as 8-bit gray."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    angle = rng.uniform(0, 2 * np.pi)
    img = 0.5 + 0.3 * (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5))
    cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.25)
    img += rng.choice([-0.35, 0.35]) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    img[rng.integers(0, size), :] += 0.2
    img[:, rng.integers(0, size)] -= 0.2
    img += rng.normal(0, 0.04, img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def write_dataset(folder, n_per_split=N_PER_SPLIT, size=32):
    """2 x n_per_split PNGs and manifest.csv; train and test rows interleaved. Returns (manifest, {split: paths})."""
    rng = np.random.default_rng(2024)
    (folder / "images").mkdir(parents=True)
    rows, paths = ["path,split,sex,label"], {"train": [], "test": []}
    for i in range(n_per_split):
        for split in ("train", "test"):
            rel = f"images/{split}_{i:02d}.png"
            Image.fromarray(structured_image(rng, size)).save(folder / rel)
            sex, label = i % 2, (i // 2) % 2  # every (sex, label) cell in each split
            rows.append(f"{rel},{split},{sex},{label}")
            paths[split].append(folder / rel)
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest, paths


def decode(paths):
    """The PNGs as the C++ reader sees them: uint8 / 255 in float32, (B, 1, S, S)."""
    arrays = []
    for p in paths:
        with Image.open(p) as im:
            assert im.mode == "L", (p, im.mode)
            arrays.append(np.asarray(im, dtype=np.uint8))
    return (np.stack(arrays)[:, None].astype(np.float32) / np.float32(255.0))


def toml_string(value):
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(path, manifest, weights, pool, arch=ARCH, n_per_split=N_PER_SPLIT, mean=MEAN, std=STD):
    path.write_text(f"""[data]
source = "manifest"
manifest = {toml_string(manifest)}
image_size = {arch["image_size"]}

[fm]
kind = "vit"
weights = {toml_string(weights)}
patch_size = {arch["patch"]}
in_chans = {arch["in_chans"]}
embed_dim = {arch["width"]}
depth = {arch["depth"]}
heads = {arch["heads"]}
mlp_ratio = {arch["mlp_ratio"]}
pool = "{pool}"
mean = "{mean}"
std = "{std}"
batch_size = 8

[dne]
method = "none"

[probes]
max_iter = 20

[output]
save_embeddings = true
""")
    return path


@pytest.fixture(scope="module")
def vit_files(tmp_path_factory):
    """The checkpoint imported into an FM file, plus the data set. Returns a dict of paths."""
    root = tmp_path_factory.mktemp("vit_e2e")
    sd = ref_vit.make_state_dict(**ARCH, seed=7, std=WEIGHT_STD)
    g = torch.Generator().manual_seed(8)
    decoder = {"mask_token": torch.randn(1, 1, 16, generator=g),
               "decoder_embed.weight": torch.randn(16, ARCH["width"], generator=g),
               "decoder_embed.bias": torch.randn(16, generator=g),
               "decoder_pred.weight": torch.randn(192, 16, generator=g)}
    checkpoint = root / "mae_tiny.pth"
    torch.save({"model": {**sd, **decoder}, "epoch": 3}, checkpoint)
    fm_file = root / "mae_tiny.h5"
    proc = subprocess.run([sys.executable, str(IMPORTER), str(checkpoint), "--out", str(fm_file),
                           "--heads", str(ARCH["heads"]), "--mean", MEAN, "--std", STD],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(fm_file, "r") as f:
        assert f["provenance"].attrs["dropped_keys"] == len(decoder)
        assert f["architecture"].attrs["image_size"] == ARCH["image_size"]
    manifest, images = write_dataset(root / "data")
    return dict(root=root, sd=sd, fm_file=fm_file, manifest=manifest, images=images)


def experiment_files(out):
    return sorted((Path(out) / "experiments").glob("*.h5"))


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_cpp_embeddings_equal_python_reference(dne_bin, vit_files, tmp_path, pool):
    config = write_config(tmp_path / "vit.toml", vit_files["manifest"], vit_files["fm_file"], pool)
    out = tmp_path / "out"
    proc = run_dne(dne_bin, "run", "--config", config, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    (result,) = experiment_files(out)
    mean = [float(v) for v in MEAN.split(",")]
    std = [float(v) for v in STD.split(",")]
    with h5py.File(result, "r") as f:
        assert not f["noise"][()].any()  # dne.method = "none": the embeddings are the clean ones
        prov = f["provenance"].attrs
        assert re.fullmatch(r"[0-9a-f]{16}", str(prov["fm_hash"])), prov["fm_hash"]
        assert "vit" in str(prov["fm"]).lower(), prov["fm"]
        for split in ("train", "test"):
            cpp = f["embeddings"][split]["x"][()]
            expected = ref_vit.forward(vit_files["sd"], decode(vit_files["images"][split]),
                                       ARCH["heads"], pool, mean, std)
            assert cpp.shape == expected.shape == (N_PER_SPLIT, ARCH["width"]), split
            diff = np.abs(cpp.astype(np.float64) - expected)
            worst = np.unravel_index(np.argmax(diff), diff.shape)
            assert diff.max() < TOLERANCE, (split, pool, diff.max(), worst)


def broken_copies(fm_file, folder):
    truncated = folder / "truncated.h5"
    data = fm_file.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    not_hdf5 = folder / "not_hdf5.h5"
    not_hdf5.write_text("this is a text file, not an HDF5 FM file\n" * 20)
    return {"truncated": truncated, "not_hdf5": not_hdf5}


@pytest.mark.parametrize("which", ["truncated", "not_hdf5"])
def test_unreadable_fm_file_is_a_model_error(dne_bin, vit_files, tmp_path, which):
    bad = broken_copies(vit_files["fm_file"], tmp_path)[which]
    config = write_config(tmp_path / "vit.toml", vit_files["manifest"], bad, "cls")
    out = tmp_path / "out"
    proc = run_dne(dne_bin, "run", "--config", config, "--out", out, "--quiet")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].strip(), proc.stderr
    assert "model error" in lines[0], lines[0]
    assert str(bad) in lines[0], lines[0]
    assert experiment_files(out) == []


def test_depth_mismatch_names_fm_depth(dne_bin, vit_files, tmp_path):
    config = write_config(tmp_path / "vit.toml", vit_files["manifest"], vit_files["fm_file"], "cls")
    out = tmp_path / "out"
    proc = run_dne(dne_bin, "run", "--config", config, "--out", out, "--quiet",
                   "--set", f"fm.depth={ARCH['depth'] + 1}")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "fm.depth" in lines[0], lines[0]
    assert experiment_files(out) == []


B16 = dict(image_size=224, patch=16, in_chans=3, width=768, depth=12, heads=12, mlp_ratio=4.0)
IMAGENET_MEAN, IMAGENET_STD = "0.485,0.456,0.406", "0.229,0.224,0.225"


def test_vit_b16_at_224_imports_loads_and_matches_the_reference(dne_bin, tmp_path):
    """The paper's FM size: a ViT-B/16 (86 M parameters) in MAE checkpoint layout at 224 x 224."""
    sd = ref_vit.make_state_dict(**B16, seed=11, std=0.02)
    checkpoint = tmp_path / "mae_vit_b16.pth"
    torch.save({"model": sd}, checkpoint)
    fm_file = tmp_path / "vit_b16.h5"
    proc = subprocess.run([sys.executable, str(IMPORTER), str(checkpoint), "--out", str(fm_file)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    checkpoint.unlink()
    n = 4
    manifest, images = write_dataset(tmp_path / "data", n_per_split=n, size=224)
    config = write_config(tmp_path / "b16.toml", manifest, fm_file, "cls", arch=B16, n_per_split=n,
                          mean=IMAGENET_MEAN, std=IMAGENET_STD)
    out = tmp_path / "out"
    proc = run_dne(dne_bin, "run", "--config", config, "--out", out, "--quiet", timeout=900)
    assert proc.returncode == 0, proc.stderr
    (result,) = experiment_files(out)
    with h5py.File(result, "r") as f:
        cpp = f["embeddings"]["test"]["x"][()]
        assert "params=85798656" in str(f["provenance"].attrs["fm"])  # ViT-B/16 without a head
    expected = ref_vit.forward(sd, decode(images["test"]), B16["heads"], "cls",
                               [float(v) for v in IMAGENET_MEAN.split(",")],
                               [float(v) for v in IMAGENET_STD.split(",")])
    assert cpp.shape == (n, 768)
    # Twelve float32 blocks: allow a little more than the small model's 1e-5.
    assert np.abs(cpp.astype(np.float64) - expected).max() < 1e-4
