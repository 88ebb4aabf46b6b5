"""Tests of the reference ViT (tests/pylib/ref_vit.py) that the end-to-end import test trusts.

ref_vit.forward is written from matrix products (patchify, explicit softmax); here it is compared
with the same network built from torch's own operators (F.conv2d, F.layer_norm,
F.multi_head_attention_forward, F.gelu), and the random weights of make_state_dict are shown to
make the 1e-5 end-to-end tolerance meaningful: a float32 evaluation stays well inside it, while a
wrong head count, a swapped LayerNorm, a dropped bias or the wrong pooling changes the embedding
by far more.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "pylib"))
import ref_vit  # noqa: E402

# The architecture, weight scale and normalisation of tests/e2e/test_vit_import_e2e.py.
ARCH = dict(image_size=32, patch=8, in_chans=3, width=48, depth=2, heads=3, mlp_ratio=4.0)
E2E_STD = 0.05
MEAN, STD = (0.4, 0.45, 0.5), (0.2, 0.25, 0.3)


def torch_ops_forward(sd, images, heads, pool, mean, std, eps=1e-6, dtype=torch.float64):
    """The same encoder from torch's built-in functional operators, in `dtype`."""
    w = {k: v.to(dtype) for k, v in sd.items()}
    c = w["patch_embed.proj.weight"].shape[1]
    d = w["patch_embed.proj.weight"].shape[0]
    patch = w["patch_embed.proj.weight"].shape[2]
    x = torch.as_tensor(images, dtype=dtype).repeat(1, c, 1, 1)
    mean = torch.tensor(mean, dtype=dtype).view(1, -1, 1, 1)
    std = torch.tensor(std, dtype=dtype).view(1, -1, 1, 1)
    x = (x - mean) / std
    x = F.conv2d(x, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=patch)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([w["cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + w["pos_embed"]
    depth = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("blocks."))
    for i in range(depth):
        p = f"blocks.{i}."
        h = F.layer_norm(x, (d,), w[p + "norm1.weight"], w[p + "norm1.bias"], eps).transpose(0, 1)
        a, _ = F.multi_head_attention_forward(
            h, h, h, d, heads, w[p + "attn.qkv.weight"], w[p + "attn.qkv.bias"], None, None, False,
            0.0, w[p + "attn.proj.weight"], w[p + "attn.proj.bias"], training=False, need_weights=False)
        x = x + a.transpose(0, 1)
        h = F.layer_norm(x, (d,), w[p + "norm2.weight"], w[p + "norm2.bias"], eps)
        h = F.linear(F.gelu(F.linear(h, w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"])),
                     w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"])
        x = x + h
    x = F.layer_norm(x, (d,), w["norm.weight"], w["norm.bias"], eps)
    return (x[:, 0] if pool == "cls" else x[:, 1:].mean(dim=1)).double().numpy()


def images(n=5, size=32, seed=3):
    """Random 8-bit grayscale images as float64 in [0, 1]."""
    return np.round(np.random.default_rng(seed).random((n, 1, size, size)) * 255) / 255


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_reference_equals_torch_operators(pool):
    sd = ref_vit.make_state_dict(**ARCH, seed=11)
    x = images()
    ours = ref_vit.forward(sd, x, ARCH["heads"], pool, MEAN, STD)
    theirs = torch_ops_forward(sd, x, ARCH["heads"], pool, MEAN, STD)
    assert ours.shape == (5, 48) and ours.dtype == np.float64
    assert np.max(np.abs(ours - theirs)) < 1e-12


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_float32_implementation_within_end_to_end_tolerance(pool):
    """A float32 evaluation (as in C++) stays well inside the 1e-5 the end-to-end test allows."""
    sd = ref_vit.make_state_dict(**ARCH, seed=0, std=E2E_STD)
    x = images(n=40)
    exact = ref_vit.forward(sd, x, ARCH["heads"], pool, MEAN, STD)
    single = torch_ops_forward(sd, x.astype(np.float32), ARCH["heads"], pool, MEAN, STD,
                               dtype=torch.float32)
    assert np.max(np.abs(single - exact)) < 5e-6


def test_grayscale_weights_and_broadcast_normalisation():
    arch = dict(ARCH, in_chans=1, patch=4)
    sd = ref_vit.make_state_dict(**arch, seed=2)
    x = images(n=2)
    ours = ref_vit.forward(sd, x, arch["heads"], "mean", 0.5, 0.25)
    theirs = torch_ops_forward(sd, x, arch["heads"], "mean", (0.5,), (0.25,))
    assert np.max(np.abs(ours - theirs)) < 1e-12


def test_state_dict_is_seeded_and_non_trivial():
    a = ref_vit.make_state_dict(**ARCH, seed=1)
    b = ref_vit.make_state_dict(**ARCH, seed=1)
    c = ref_vit.make_state_dict(**ARCH, seed=2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["norm.bias"], c["norm.bias"])
    assert a["blocks.0.mlp.fc1.weight"].shape == (192, 48) and a["pos_embed"].shape == (1, 17, 48)
    for name, t in a.items():
        assert t.dtype == torch.float32, name
        assert t.std() > 0.01, name  # no all-zero biases, no all-one LayerNorm weights
        if name.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
            assert abs(t.mean() - 1) < 0.2, name


@pytest.mark.parametrize("mistake", ["heads", "norm_swap", "no_qkv_bias", "pool"])
def test_mistakes_exceed_end_to_end_tolerance(mistake):
    sd = ref_vit.make_state_dict(**ARCH, seed=0, std=E2E_STD)
    x = images()
    right = ref_vit.forward(sd, x, 3, "cls", MEAN, STD)
    heads, pool = 3, "cls"
    if mistake == "heads":
        heads = 1
    elif mistake == "norm_swap":
        sd = dict(sd, **{"blocks.0.norm1.weight": sd["blocks.0.norm2.weight"],
                         "blocks.0.norm2.weight": sd["blocks.0.norm1.weight"]})
    elif mistake == "no_qkv_bias":
        sd = dict(sd, **{"blocks.1.attn.qkv.bias": torch.zeros(144)})
    else:
        pool = "mean"
    wrong = ref_vit.forward(sd, x, heads, pool, MEAN, STD)
    assert np.max(np.abs(wrong - right)) > 1e-3
