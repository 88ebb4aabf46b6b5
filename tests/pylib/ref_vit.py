"""Independent plain-torch reference of the ViT forward pass of docs/fm-file.md (no timm).

`make_state_dict` draws a timm-layout state dict with seeded random weights: matrices and tokens
N(0, std^2) and, so that a wrong mapping (swapped norms, a bias on the wrong layer, q/k/v in the
wrong order) cannot go unnoticed, LayerNorm weights 1 + N(0, 0.2^2) and every bias N(0, 0.1^2).
`forward` evaluates the encoder in float64 and returns the pooled (B, D) embedding as numpy.
"""
import math

import numpy as np
import torch


def make_state_dict(image_size, patch, in_chans, width, depth, heads, mlp_ratio, seed, std=0.02):
    """Seeded random weights named and shaped as timm's VisionTransformer (float32 tensors).

    `heads` does not change any shape; it is checked to divide `width`."""
    if image_size % patch != 0:
        raise ValueError(f"image_size {image_size} is not a multiple of patch {patch}")
    if width % heads != 0:
        raise ValueError(f"heads {heads} does not divide width {width}")
    hidden = int(mlp_ratio * width)
    tokens = 1 + (image_size // patch) ** 2
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape, scale=std, offset=0.0):
        return (offset + scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).float()

    def norm_weight():
        return normal(width, scale=0.2, offset=1.0)

    def bias(n):
        return normal(n, scale=0.1)

    sd = {
        "cls_token": normal(1, 1, width),
        "pos_embed": normal(1, tokens, width),
        "patch_embed.proj.weight": normal(width, in_chans, patch, patch),
        "patch_embed.proj.bias": bias(width),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        sd[b + "norm1.weight"] = norm_weight()
        sd[b + "norm1.bias"] = bias(width)
        sd[b + "attn.qkv.weight"] = normal(3 * width, width)
        sd[b + "attn.qkv.bias"] = bias(3 * width)
        sd[b + "attn.proj.weight"] = normal(width, width)
        sd[b + "attn.proj.bias"] = bias(width)
        sd[b + "norm2.weight"] = norm_weight()
        sd[b + "norm2.bias"] = bias(width)
        sd[b + "mlp.fc1.weight"] = normal(hidden, width)
        sd[b + "mlp.fc1.bias"] = bias(hidden)
        sd[b + "mlp.fc2.weight"] = normal(width, hidden)
        sd[b + "mlp.fc2.bias"] = bias(width)
    sd["norm.weight"] = norm_weight()
    sd["norm.bias"] = bias(width)
    return sd


def _layer_norm(x, weight, bias, eps):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased variance, as nn.LayerNorm
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def _linear(x, weight, bias):
    return x @ weight.T + bias


def _gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _attention(x, qkv_w, qkv_b, proj_w, proj_b, heads):
    b, t, d = x.shape
    head_dim = d // heads
    qkv = _linear(x, qkv_w, qkv_b)                        # (B, T, 3D): [q | k | v]
    q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]

    def split(z):                                         # (B, T, D) -> (B, heads, T, D/heads)
        return z.reshape(b, t, heads, head_dim).permute(0, 2, 1, 3)

    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
    scores = scores - scores.max(dim=-1, keepdim=True).values
    weights = torch.exp(scores)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    out = (weights @ v).permute(0, 2, 1, 3).reshape(b, t, d)
    return _linear(out, proj_w, proj_b)


def _patchify(x, patch):
    """(B, C, S, S) -> (B, N, C*P*P), patches row-major, each flattened as (C, P, P)."""
    b, c, s, _ = x.shape
    g = s // patch
    x = x.reshape(b, c, g, patch, g, patch).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, g * g, c * patch * patch)


def forward(state_dict, images, heads, pool, mean, std, eps=1e-6):
    """Encoder forward of docs/fm-file.md in float64.

    images: (B, 1, S, S) grayscale in [0, 1] (numpy or torch). mean/std: sequences of in_chans
    values (or one value, broadcast). pool: "cls" (token 0) or "mean" (of the N patch tokens
    after the final norm). Returns (B, D) float64 numpy."""
    w = {k: torch.as_tensor(np.asarray(v.detach().cpu() if torch.is_tensor(v) else v),
                            dtype=torch.float64) for k, v in state_dict.items()}
    x = torch.as_tensor(np.asarray(images), dtype=torch.float64)
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"images must be (B, 1, S, S), got {tuple(x.shape)}")
    proj = w["patch_embed.proj.weight"]
    width, in_chans, patch = proj.shape[0], proj.shape[1], proj.shape[2]
    mean = torch.as_tensor(np.broadcast_to(np.asarray(mean, dtype=np.float64), (in_chans,)).copy())
    std = torch.as_tensor(np.broadcast_to(np.asarray(std, dtype=np.float64), (in_chans,)).copy())

    x = x.expand(-1, in_chans, -1, -1)
    x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    # A stride-P convolution is a matrix product over flattened patches.
    tokens = _patchify(x, patch) @ proj.reshape(width, -1).T + w["patch_embed.proj.bias"]
    cls = w["cls_token"].expand(x.shape[0], -1, -1)
    h = torch.cat([cls, tokens], dim=1) + w["pos_embed"]

    depth = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("blocks."))
    for i in range(depth):
        p = f"blocks.{i}."
        h = h + _attention(_layer_norm(h, w[p + "norm1.weight"], w[p + "norm1.bias"], eps),
                           w[p + "attn.qkv.weight"], w[p + "attn.qkv.bias"],
                           w[p + "attn.proj.weight"], w[p + "attn.proj.bias"], heads)
        m = _layer_norm(h, w[p + "norm2.weight"], w[p + "norm2.bias"], eps)
        m = _linear(_gelu_erf(_linear(m, w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"])),
                    w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"])
        h = h + m
    h = _layer_norm(h, w["norm.weight"], w["norm.bias"], eps)
    if pool == "cls":
        out = h[:, 0]
    elif pool == "mean":
        out = h[:, 1:].mean(dim=1)
    else:
        raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
    return out.numpy()
