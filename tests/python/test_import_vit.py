"""Tests of scripts/import_vit.py on its own: small hand-checkable checkpoints in, FM files out.

Every case below is a checkpoint written with torch.save plus the importer's arguments; the
module fixture runs them all (as subprocesses of this interpreter, concurrently) and the tests
check: names, shapes and values read back with h5py equal the state dict; the state dict is found
under `model`, `state_dict`, the top level and with a `module.` prefix; decoder / mask-token /
head keys are dropped and counted; the architecture attributes (incl. inferred image size and
default heads / normalisation) and their HDF5 types match docs/fm-file.md; every refusal exits 2
with one stderr line naming the problem and leaves neither the output nor a temporary file.
"""
import argparse
import concurrent.futures
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "import_vit.py"
sys.path.insert(0, str(REPO / "tests" / "pylib"))
import ref_vit  # noqa: E402

# The default small ViT: 32 px images, 8 px patches (16 patches), 3 channels, width 64 (not a
# standard width, so every case passes --heads 1: see with_heads), 2 blocks, MLP ratio 4.
BASE = dict(image_size=32, patch=8, in_chans=3, width=64, depth=2, heads=1, mlp_ratio=4.0)


def vit(seed=0, **changes):
    return ref_vit.make_state_dict(**{**BASE, **changes}, seed=seed)


def without(sd, *names):
    return {k: v for k, v in sd.items() if k not in names}


def with_value(sd, name, index, value):
    sd = dict(sd)
    t = sd[name].clone()
    t.view(-1)[index] = value
    sd[name] = t
    return sd


def mae_checkpoint():
    """An MAE pretraining checkpoint: encoder + decoder + mask token, and a classifier head."""
    sd = vit(seed=1)
    g = torch.Generator().manual_seed(5)
    extra = {
        "mask_token": torch.randn(1, 1, 32, generator=g),
        "decoder_embed.weight": torch.randn(32, 64, generator=g),
        "decoder_embed.bias": torch.randn(32, generator=g),
        "decoder_pos_embed": torch.randn(1, 17, 32, generator=g),
        "decoder_blocks.0.norm1.weight": torch.randn(32, generator=g),
        "decoder_norm.weight": torch.randn(32, generator=g),
        "decoder_pred.weight": torch.randn(192, 32, generator=g),
        "head.weight": torch.randn(10, 64, generator=g),
        "head.bias": torch.randn(10, generator=g),
    }
    return {"model": {**sd, **extra}}, sd


def renamed_block(sd, old, new):
    return {k.replace(f"blocks.{old}.", f"blocks.{new}."): v for k, v in sd.items()}


SD = vit()
MAE_CKPT, MAE_SD = mae_checkpoint()
GRAY = dict(image_size=24, patch=4, in_chans=1, width=32, heads=2)

# name -> (object to torch.save, or bytes to write, or None for no file; importer arguments)
GOOD = {
    "model": ({"model": SD, "epoch": 7}, []),
    "state_dict": ({"state_dict": SD}, []),
    "top_level": (SD, []),
    "module_prefix": ({"model": {"module." + k: v for k, v in SD.items()}}, []),
    "mae": (MAE_CKPT, []),
    "no_qkv_bias": ({"model": without(SD, "blocks.0.attn.qkv.bias", "blocks.1.attn.qkv.bias")}, []),
    "grayscale": ({"model": vit(**GRAY)}, ["--heads", "2"]),
    "grayscale_size_given": ({"model": vit(**GRAY)}, ["--heads", "2", "--image-size", "24"]),
    "options": ({"model": SD}, ["--mean", "0.3", "--std", "0.2,0.3,0.4", "--layer-norm-eps", "1e-5"]),
    "chest_xray": ({"model": SD}, ["--mean", "chest_xray", "--std", "chest_xray"]),
    "width_192": ({"model": vit(width=192, heads=3)}, []),
    "half": ({"model": {k: v.half() for k, v in SD.items()}}, []),
    "pickled_args": ({"model": SD, "args": argparse.Namespace(lr=0.1)}, []),
}

FC_NORM = {**without(SD, "norm.weight", "norm.bias"),
           "fc_norm.weight": torch.ones(64), "fc_norm.bias": torch.zeros(64)}

# name -> (checkpoint, arguments, fragment of the one stderr line)
BAD = {
    "missing_file": (None, [], "no such file"),
    "not_a_checkpoint": (b"this is not a torch checkpoint\n" * 10, [], "cannot read checkpoint"),
    "truncated": ("truncated", [], "cannot read checkpoint"),
    "no_vit_weights": ({"model": {"encoder.weight": torch.zeros(3, 3)}}, [], "no ViT weights found"),
    "plain_tensor": (torch.zeros(4), [], "no ViT weights found"),
    "fc_norm": ({"model": FC_NORM}, [], "'fc_norm.*' present"),
    "unknown_key": ({"model": {**SD, "blocks.0.ls1.gamma": torch.ones(64)}}, [],
                    "unknown extra key 'blocks.0.ls1.gamma'"),
    "non_tensor_value": ({"model": {**SD, "blocks.0.note": "hello"}}, [],
                         "unknown extra key 'blocks.0.note'"),
    "bad_fc2_shape": ({"model": {**SD, "blocks.1.mlp.fc2.weight": torch.zeros(256, 64)}}, [],
                      "inconsistent shapes: 'blocks.1.mlp.fc2.weight' is (256, 64), expected (64, 256)"),
    "bad_qkv_shape": ({"model": {**SD, "blocks.0.attn.qkv.weight": torch.zeros(128, 64)}}, [],
                      "inconsistent shapes: 'blocks.0.attn.qkv.weight' is (128, 64), expected (192, 64)"),
    "nan": ({"model": with_value(SD, "blocks.1.mlp.fc1.weight", 17, float("nan"))}, [],
            "non-finite values in 'blocks.1.mlp.fc1.weight'"),
    "no_cls_slot": ({"model": {**SD, "pos_embed": torch.zeros(1, 16, 64)}}, [], "no class-token slot"),
    "pos_embed_not_square": ({"model": {**SD, "pos_embed": torch.zeros(1, 20, 64)}}, [],
                             "inconsistent shapes: 'pos_embed'"),
    "missing_norm_bias": ({"model": without(SD, "norm.bias")}, [], "missing weight 'norm.bias'"),
    "partial_qkv_bias": ({"model": without(SD, "blocks.1.attn.qkv.bias")}, [],
                         "missing weight 'blocks.1.attn.qkv.bias'"),
    "block_gap": ({"model": renamed_block(SD, 1, 2)}, [], "block 1 is missing"),
    "heads_not_dividing": ({"model": SD}, ["--heads", "5"], "--heads 5 does not divide width 64"),
    "heads_not_inferable": ({"model": vit(width=48, heads=3)}, [], "give --heads"),
    "image_size_disagrees": ({"model": SD}, ["--image-size", "48"], "--image-size 48 disagrees"),
    "mean_wrong_count": ({"model": SD}, ["--mean", "0.1,0.2"], "--mean '0.1,0.2' has 2 values"),
    "std_not_positive": ({"model": SD}, ["--std", "0.2,0,0.2"], "every value must be positive"),
    "eps_not_positive": ({"model": SD}, ["--layer-norm-eps", "0"], "--layer-norm-eps"),
    "usage_no_out": ({"model": SD}, ["--no-out"], "usage error"),
    "out_dir_missing": ({"model": SD}, ["--out-in-missing-dir"], "does not exist"),
}


def with_heads(cases):
    """Every case gets --heads 1 (BASE's) unless it names --heads or tests the default."""
    out = {}
    for name, (content, args, *rest) in cases.items():
        if "--heads" not in args and name not in ("width_192", "heads_not_inferable", "out_dir_missing"):
            args = ["--heads", "1", *args]
        out[name] = (content, args, *rest)
    return out


GOOD = with_heads(GOOD)
BAD = with_heads(BAD)


def write_checkpoint(content, path):
    if content is None:
        return
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "truncated":
        torch.save({"model": SD}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        torch.save(content, path)


def command(case_dir, args):
    ckpt, out = case_dir / "ckpt.pth", case_dir / "fm.h5"
    if args == ["--no-out"]:
        return [sys.executable, str(SCRIPT), str(ckpt)]
    if args == ["--out-in-missing-dir"]:
        return [sys.executable, str(SCRIPT), str(ckpt), "--out", str(case_dir / "nope" / "fm.h5"), "--heads", "1"]
    return [sys.executable, str(SCRIPT), str(ckpt), "--out", str(out), *args]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Runs every GOOD and BAD case; name -> (case directory, CompletedProcess)."""
    root = tmp_path_factory.mktemp("import_vit")
    jobs = {}
    for name, (content, args, *_) in {**GOOD, **BAD}.items():
        case_dir = root / name
        case_dir.mkdir()
        write_checkpoint(content, case_dir / "ckpt.pth")
        jobs[name] = (case_dir, command(case_dir, args))
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {name: pool.submit(subprocess.run, cmd, capture_output=True, text=True, timeout=300)
                   for name, (_, cmd) in jobs.items()}
        return {name: (jobs[name][0], f.result()) for name, f in futures.items()}


def good(results, name):
    case_dir, proc = results[name]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    return case_dir / "fm.h5", proc


def read_weights(path):
    with h5py.File(path, "r") as f:
        return {name: ds[()] for name, ds in f["weights"].items()}


# ---------------------------------------------------------------------------------------------
# Successful imports


def test_round_trip_names_shapes_values(results):
    path, _ = good(results, "model")
    weights = read_weights(path)
    assert set(weights) == set(SD)
    for name, tensor in SD.items():
        assert weights[name].dtype == np.float32, name
        assert weights[name].shape == tuple(tensor.shape), name
        assert np.array_equal(weights[name], tensor.numpy()), name


def test_root_and_architecture_attributes_and_types(results):
    path, _ = good(results, "model")
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "dne-fm" and isinstance(f.attrs["format"], str)
        assert f.attrs["format_version"] == 1 and f.attrs["format_version"].dtype == np.int64
        assert f.attrs["kind"] == "vit"
        arch = f["architecture"].attrs
        expected = dict(image_size=32, patch_size=8, in_chans=3, width=64, depth=2, heads=1)
        for key, value in expected.items():
            assert arch[key] == value and arch[key].dtype == np.int64, key
        assert arch["mlp_ratio"] == 4.0 and arch["mlp_ratio"].dtype == np.float64
        assert arch["layer_norm_eps"] == 1e-6 and arch["layer_norm_eps"].dtype == np.float64
        for key, value in [("mean", (0.485, 0.456, 0.406)), ("std", (0.229, 0.224, 0.225))]:
            ds = f["architecture"][key]
            assert ds.dtype == np.float64 and ds.shape == (3,), key
            assert np.array_equal(ds[()], np.array(value)), key


def test_provenance(results):
    path, _ = good(results, "model")
    ckpt = path.parent / "ckpt.pth"
    with h5py.File(path, "r") as f:
        prov = f["provenance"].attrs
        assert prov["source"] == "import"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", prov["created"]), prov["created"]
        assert re.fullmatch(r"[0-9a-f]{40}|unknown", prov["git_commit"]), prov["git_commit"]
        assert prov["source_file"] == str(ckpt.resolve())
        assert prov["source_key"] == "model"
        assert prov["source_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
        assert prov["dropped_keys"] == 0 and prov["dropped_keys"].dtype == np.int64


@pytest.mark.parametrize("name,source_key", [
    ("model", "model"), ("state_dict", "state_dict"), ("top_level", "top level"),
    ("module_prefix", "model")])
def test_state_dict_location(results, name, source_key):
    path, _ = good(results, name)
    with h5py.File(path, "r") as f:
        assert f["provenance"].attrs["source_key"] == source_key
    weights = read_weights(path)
    assert set(weights) == set(SD)
    assert np.array_equal(weights["blocks.1.mlp.fc2.weight"], SD["blocks.1.mlp.fc2.weight"].numpy())


def test_decoder_mask_token_and_head_dropped_and_counted(results):
    path, proc = good(results, "mae")
    weights = read_weights(path)
    assert set(weights) == set(MAE_SD)
    for name, tensor in MAE_SD.items():
        assert np.array_equal(weights[name], tensor.numpy()), name
    with h5py.File(path, "r") as f:
        assert f["provenance"].attrs["dropped_keys"] == 9
    assert "dropped keys: 9" in proc.stdout


def test_missing_qkv_bias_written_as_zeros(results):
    path, proc = good(results, "no_qkv_bias")
    weights = read_weights(path)
    for i in range(2):
        bias = weights[f"blocks.{i}.attn.qkv.bias"]
        assert bias.shape == (192,) and bias.dtype == np.float32 and not bias.any()
    assert np.array_equal(weights["blocks.0.attn.qkv.weight"], SD["blocks.0.attn.qkv.weight"].numpy())
    assert "no qkv biases" in proc.stdout


@pytest.mark.parametrize("name", ["grayscale", "grayscale_size_given"])
def test_grayscale_image_size_inferred_and_defaults(results, name):
    path, _ = good(results, name)
    with h5py.File(path, "r") as f:
        arch = f["architecture"]
        assert arch.attrs["image_size"] == 24  # pos_embed (1, 1 + 36, 32): 6 x 6 patches of 4 px
        assert arch.attrs["patch_size"] == 4 and arch.attrs["in_chans"] == 1
        assert arch.attrs["width"] == 32 and arch.attrs["heads"] == 2
        assert np.array_equal(arch["mean"][()], [0.5]) and np.array_equal(arch["std"][()], [0.25])


def test_given_normalisation_broadcast_and_layer_norm_eps(results):
    path, _ = good(results, "options")
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["architecture/mean"][()], [0.3, 0.3, 0.3])
        assert np.array_equal(f["architecture/std"][()], [0.2, 0.3, 0.4])
        assert f["architecture"].attrs["layer_norm_eps"] == 1e-5


def test_chest_xray_preset_is_the_reference_normalisation(results):
    path, _ = good(results, "chest_xray")  # the DNE reference's util/datasets.py: 0.5056, 0.252
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["architecture/mean"][()], [0.5056] * 3)
        assert np.array_equal(f["architecture/std"][()], [0.252] * 3)


def test_default_heads_only_for_standard_widths(results):
    path, _ = good(results, "width_192")  # ViT-Ti's width: 3 heads of 64
    with h5py.File(path, "r") as f:
        assert f["architecture"].attrs["heads"] == 3 and f["architecture"].attrs["width"] == 192


def test_half_precision_stored_as_float32(results):
    path, _ = good(results, "half")
    weights = read_weights(path)
    for name, tensor in SD.items():
        assert weights[name].dtype == np.float32
        assert np.array_equal(weights[name], tensor.half().float().numpy()), name


def test_checkpoint_needing_full_unpickler_imports_with_a_note(results):
    path, proc = good(results, "pickled_args")
    assert "weights_only=False" in proc.stdout
    assert set(read_weights(path)) == set(SD)


def test_summary_names_architecture_parameters_and_output(results):
    path, proc = good(results, "model")
    params = sum(t.numel() for t in SD.values())
    assert "width=64 depth=2 heads=1" in proc.stdout
    assert f"parameters: {params:,}" in proc.stdout
    assert str(path) in proc.stdout
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.pth", "fm.h5"]


def test_existing_output_is_replaced(tmp_path):
    ckpt, out = tmp_path / "ckpt.pth", tmp_path / "fm.h5"
    out.write_bytes(b"old contents")
    torch.save({"model": SD}, ckpt)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(ckpt), "--out", str(out), "--heads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert set(read_weights(out)) == set(SD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth", "fm.h5"]


# ---------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize("name", list(BAD))
def test_refusal_one_line_exit_2_nothing_written(results, name):
    case_dir, proc = results[name]
    fragment = BAD[name][2]
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("import_vit: "), lines[0]
    assert fragment in lines[0], lines[0]
    left = sorted(p.name for p in case_dir.iterdir())
    assert left == ([] if name == "missing_file" else ["ckpt.pth"]), left


def test_write_failure_removes_temporary_file(tmp_path):
    spec = importlib.util.spec_from_file_location("import_vit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "fm.h5"
    architecture = dict(image_size=8, patch_size=8, in_chans=1, width=4, depth=0, heads=1,
                        mlp_ratio=4.0, layer_norm_eps=1e-6, mean=(0.5,), std=(0.25,))
    weights = {"cls_token": np.zeros((1, 1, 4), np.float32),
               "pos_embed": np.array([object()], dtype=object)}  # h5py cannot store this
    with pytest.raises(module.Refusal, match="cannot write"):
        module.write_fm_file(str(out), architecture, weights, {"source": "import"})
    assert list(tmp_path.iterdir()) == []
