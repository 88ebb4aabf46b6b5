#!/usr/bin/env python3
"""Convert a timm / MAE Vision Transformer checkpoint (.pth) into the project's FM file.

The FM file layout is docs/fm-file.md: root attributes, /architecture (inferred from the weight
shapes), /weights/<timm name> as float32, /provenance. The MAE decoder (`decoder_*`,
`mask_token`) and a classifier `head.*` are dropped; anything else the format cannot represent
is refused with one line on stderr ("import_vit: ...") and exit code 2, leaving no output file.

Run it with the interpreter that has torch, h5py and numpy (Debian's /usr/bin/python3 with
python3-torch):

    /usr/bin/python3 scripts/import_vit.py mae_vit_base.pth --out fm/mae_cxr.h5
"""
import argparse
import datetime
import hashlib
import math
import os
import re
import subprocess
import sys
import warnings

# Heads of the standard ViT widths (Ti, S, B, L): timm and MAE use 64-wide heads there.
KNOWN_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16}

import numpy as np

FORMAT = "dne-fm"
FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAYSCALE_MEAN = (0.5,)
GRAYSCALE_STD = (0.25,)
BLOCK_PARAMS = ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
                "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias",
                "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias")


class Refusal(Exception):
    """A refusal: the message becomes the one stderr line, the exit code is 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one 'import_vit: ' line and exit code 2, like refusals."""

    def error(self, message):
        sys.stderr.write(f"import_vit: usage error: {message} (see --help)\n")
        sys.exit(2)


def parse_args(argv):
    p = Parser(prog="import_vit.py", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="timm / MAE checkpoint (.pth) readable by torch.load")
    p.add_argument("--out", required=True, help="FM file to write (HDF5, docs/fm-file.md)")
    p.add_argument("--heads", type=int, default=None,
                   help="attention heads (cannot be inferred; default for the standard widths 192/384/768/1024: 3/6/12/16; required otherwise)")
    p.add_argument("--image-size", type=int, default=None,
                   help="input side S; default sqrt(N) * patch from pos_embed (must agree if given)")
    p.add_argument("--mean", default=None,
                   help="per-channel input mean, 1 or in_chans values 'a,b,c', or chest_xray (0.5056) (default ImageNet's "
                        "for 3 channels, 0.5 for 1)")
    p.add_argument("--std", default=None,
                   help="per-channel input std, 1 or in_chans values, or chest_xray (0.252) (default ImageNet's for 3 "
                        "channels, 0.25 for 1)")
    p.add_argument("--layer-norm-eps", type=float, default=1e-6,
                   help="LayerNorm epsilon (1e-6 in timm's and MAE's ViTs)")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# Reading the checkpoint


def load_checkpoint(path):
    """torch.load on CPU, weights_only first. Returns (object, note or None)."""
    import torch  # imported here so that `--help` works without torch

    if not os.path.isfile(path):
        raise Refusal(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise Refusal(f"{path}: cannot read (permission denied)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.load(path, map_location="cpu", weights_only=True), None
        except Exception:  # noqa: BLE001  (any failure: try the full unpickler)
            pass
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001
            raise Refusal(f"{path}: cannot read checkpoint (not a torch.save file?): "
                          f"{one_line(e)}") from None
    note = ("loaded with weights_only=False: the file holds Python objects besides tensors "
            "(e.g. training arguments), which unpickling runs; import only checkpoints you trust")
    return obj, note


def one_line(error, limit=200):
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def find_state_dict(obj, path):
    """The tensor dict under 'model', 'state_dict' or the top level. Returns (dict, source_key)."""
    import torch

    if not isinstance(obj, dict):
        raise Refusal(f"{path}: no ViT weights found: the checkpoint is a "
                      f"{type(obj).__name__}, not a dict of tensors")
    for key in ("model", "state_dict"):
        if key in obj:
            if not isinstance(obj[key], dict):
                raise Refusal(f"{path}: no ViT weights found: '{key}' is a "
                              f"{type(obj[key]).__name__}, not a dict of tensors")
            candidate, source_key = obj[key], key
            break
    else:
        candidate, source_key = obj, "top level"
    tensors = {}
    for name, value in candidate.items():
        if not isinstance(name, str):
            raise Refusal(f"{path}: no ViT weights found: key {name!r} under {source_key} "
                          "is not a string")
        if name.startswith("module."):
            name = name[len("module."):]
        if name in tensors:
            raise Refusal(f"{path}: key '{name}' appears twice (with and without 'module.')")
        tensors[name] = value
    if not isinstance(tensors.get("patch_embed.proj.weight"), torch.Tensor):
        raise Refusal(f"{path}: no ViT weights found under {source_key} "
                      f"(no tensor 'patch_embed.proj.weight' among {len(tensors)} keys)")
    for name, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise Refusal(f"{path}: unknown extra key '{name}' under {source_key} "
                          f"(a {type(value).__name__}, not a tensor)")
    return tensors, source_key


def is_dropped(name):
    """MAE decoder, mask token and classifier head: not part of the encoder."""
    return name.startswith("decoder_") or name == "mask_token" or name.startswith("head.")


# ---------------------------------------------------------------------------------------------
# Architecture


def shape_text(shape):
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def expected_shapes(width, in_chans, patch, tokens, depth, hidden):
    d, h = width, hidden
    shapes = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, tokens, d),
        "patch_embed.proj.weight": (d, in_chans, patch, patch),
        "patch_embed.proj.bias": (d,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({
            b + "norm1.weight": (d,), b + "norm1.bias": (d,),
            b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
            b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
            b + "norm2.weight": (d,), b + "norm2.bias": (d,),
            b + "mlp.fc1.weight": (h, d), b + "mlp.fc1.bias": (h,),
            b + "mlp.fc2.weight": (d, h), b + "mlp.fc2.bias": (d,),
        })
    shapes["norm.weight"] = (d,)
    shapes["norm.bias"] = (d,)
    return shapes


def parse_channels(text, default, channels, option):
    """'a,b,c' or 'a' -> tuple of `channels` floats (one value is broadcast)."""
    if text is None:
        values = default
    elif text == "chest_xray":  # the DNE reference code's chest X-ray normalisation (util/datasets.py)
        values = (0.252,) if option == "--std" else (0.5056,)
    else:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            raise Refusal(f"{option} '{text}' is not a comma-separated list of numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise Refusal(f"{option} '{text}' has a non-finite value")
    if option == "--std" and not all(v > 0 for v in values):
        raise Refusal(f"{option} '{text}': every value must be positive")
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise Refusal(f"{option} '{text}' has {len(values)} values; give 1 or in_chans = {channels}")
    return tuple(values)


def build(tensors, args, path):
    """Checks the encoder weights and infers the architecture.

    Returns (architecture dict, {name: float32 numpy array} in the format's order, notes)."""
    import torch

    notes = []
    if any(k.startswith("fc_norm.") for k in tensors):
        raise Refusal(f"{path}: 'fc_norm.*' present: a global-pool fine-tuned checkpoint "
                      "(its norm follows the pooling), which the FM file cannot represent")

    proj = tensors["patch_embed.proj.weight"]
    if proj.dim() != 4 or proj.shape[2] != proj.shape[3]:
        raise Refusal(f"{path}: inconsistent shapes: 'patch_embed.proj.weight' is "
                      f"{shape_text(proj.shape)}, expected (D, C, P, P)")
    width, in_chans, patch = (int(s) for s in proj.shape[:3])

    block_ids = set()
    for name in tensors:
        m = re.match(r"blocks\.(\d+)\.", name)
        if m:
            block_ids.add(int(m.group(1)))
    depth = max(block_ids) + 1 if block_ids else 0
    if depth == 0:
        raise Refusal(f"{path}: no ViT weights found: no 'blocks.<i>.*' keys")
    missing_blocks = sorted(set(range(depth)) - block_ids)
    if missing_blocks:
        raise Refusal(f"{path}: blocks are not numbered 0..{depth - 1}: block "
                      f"{missing_blocks[0]} is missing")

    fc1 = tensors.get("blocks.0.mlp.fc1.weight")
    if fc1 is None:
        raise Refusal(f"{path}: missing weight 'blocks.0.mlp.fc1.weight'")
    if fc1.dim() != 2:
        raise Refusal(f"{path}: inconsistent shapes: 'blocks.0.mlp.fc1.weight' is "
                      f"{shape_text(fc1.shape)}, expected (H, {width})")
    hidden = int(fc1.shape[0])
    mlp_ratio = hidden / width
    if int(mlp_ratio * width) != hidden:  # readers compute the hidden width as mlp_ratio * width
        raise Refusal(f"{path}: MLP width {hidden} is not representable as mlp_ratio * {width}")

    pos = tensors.get("pos_embed")
    if pos is None:
        raise Refusal(f"{path}: missing weight 'pos_embed'")
    if pos.dim() != 3 or pos.shape[0] != 1 or pos.shape[2] != width:
        raise Refusal(f"{path}: inconsistent shapes: 'pos_embed' is {shape_text(pos.shape)}, "
                      f"expected (1, 1 + N, {width})")
    tokens = int(pos.shape[1])
    side = math.isqrt(max(tokens - 1, 0))
    if tokens < 2 or side * side != tokens - 1:
        if math.isqrt(tokens) ** 2 == tokens:
            raise Refusal(f"{path}: 'pos_embed' {shape_text(pos.shape)} has no class-token "
                          f"slot ({tokens} = {math.isqrt(tokens)}^2 patch positions only)")
        raise Refusal(f"{path}: inconsistent shapes: 'pos_embed' {shape_text(pos.shape)}: "
                      f"{tokens} - 1 positions is not a square number of patches")
    image_size = side * patch
    if args.image_size is not None and args.image_size != image_size:
        raise Refusal(f"{path}: --image-size {args.image_size} disagrees with pos_embed "
                      f"{shape_text(pos.shape)} and patch {patch} (image size {image_size})")

    if args.heads is None:
        # Heads change no weight shape, so a wrong guess would import silently: only the
        # standard timm / MAE widths are known (ViT-H/14 has 1280 wide with 16 heads, not 20).
        if width not in KNOWN_HEADS:
            raise Refusal(f"width {width} is not a standard ViT width "
                          f"({', '.join(f'{w}: {h} heads' for w, h in KNOWN_HEADS.items())}): give --heads")
        heads = KNOWN_HEADS[width]
    else:
        heads = args.heads
    if heads < 1 or width % heads != 0:
        raise Refusal(f"--heads {heads} does not divide width {width}")
    if not (math.isfinite(args.layer_norm_eps) and args.layer_norm_eps > 0):
        raise Refusal(f"--layer-norm-eps {args.layer_norm_eps} must be a positive number")

    default_mean, default_std = ((IMAGENET_MEAN, IMAGENET_STD) if in_chans == 3
                                 else (GRAYSCALE_MEAN, GRAYSCALE_STD))
    mean = parse_channels(args.mean, default_mean, in_chans, "--mean")
    std = parse_channels(args.std, default_std, in_chans, "--std")

    shapes = expected_shapes(width, in_chans, patch, tokens, depth, hidden)
    qkv_bias_names = [f"blocks.{i}.attn.qkv.bias" for i in range(depth)]
    present = [n for n in qkv_bias_names if n in tensors]
    if not present:
        tensors = dict(tensors)
        for n in qkv_bias_names:
            tensors[n] = torch.zeros(3 * width)
        notes.append("the checkpoint has no qkv biases (qkv_bias=False): wrote zeros")
    unknown = sorted(n for n in tensors if n not in shapes)
    if unknown:
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise Refusal(f"{path}: unknown extra key '{unknown[0]}'{more}: not part of a "
                      "timm VisionTransformer encoder")
    weights = {}
    for name, shape in shapes.items():
        if name not in tensors:
            raise Refusal(f"{path}: missing weight '{name}'")
        t = tensors[name]
        if tuple(t.shape) != shape:
            raise Refusal(f"{path}: inconsistent shapes: '{name}' is {shape_text(t.shape)}, "
                          f"expected {shape_text(shape)}")
        if not t.is_floating_point():
            raise Refusal(f"{path}: '{name}' has dtype {t.dtype}, not floating point")
        array = t.detach().to(torch.float32).contiguous().numpy()
        if not np.isfinite(array).all():
            raise Refusal(f"{path}: non-finite values in '{name}' "
                          f"({int((~np.isfinite(array)).sum())} of {array.size})")
        weights[name] = array
    architecture = {"image_size": image_size, "patch_size": patch, "in_chans": in_chans,
                    "width": width, "depth": depth, "heads": heads, "mlp_ratio": mlp_ratio,
                    "layer_norm_eps": float(args.layer_norm_eps), "mean": mean, "std": std}
    return architecture, weights, notes


# ---------------------------------------------------------------------------------------------
# Writing the FM file


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        proc = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = proc.stdout.strip()
    return commit if proc.returncode == 0 and commit else "unknown"


def write_fm_file(out, architecture, weights, provenance):
    """Writes OUT.tmp.<pid> and renames it to OUT; the temporary file never outlives an error."""
    import h5py

    tmp = f"{out}.tmp.{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            f.attrs["kind"] = "vit"
            arch = f.create_group("architecture")
            for key in ("image_size", "patch_size", "in_chans", "width", "depth", "heads"):
                arch.attrs[key] = np.int64(architecture[key])
            for key in ("mlp_ratio", "layer_norm_eps"):
                arch.attrs[key] = np.float64(architecture[key])
            arch.create_dataset("mean", data=np.asarray(architecture["mean"], dtype=np.float64))
            arch.create_dataset("std", data=np.asarray(architecture["std"], dtype=np.float64))
            group = f.create_group("weights")
            for name, array in weights.items():
                group.create_dataset(name, data=array, dtype=np.float32)
            prov = f.create_group("provenance")
            for key, value in provenance.items():
                prov.attrs[key] = np.int64(value) if isinstance(value, int) else str(value)
        os.replace(tmp, out)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise Refusal(f"{out}: cannot write: {one_line(e)}") from None
        raise


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    checkpoint = os.path.abspath(args.checkpoint)
    out = os.path.abspath(args.out)
    try:
        out_dir = os.path.dirname(out)
        if not os.path.isdir(out_dir):
            raise Refusal(f"{args.out}: output directory '{out_dir}' does not exist")
        if os.path.isdir(out):
            raise Refusal(f"{args.out}: is a directory")
        obj, load_note = load_checkpoint(checkpoint)
        tensors, source_key = find_state_dict(obj, checkpoint)
        dropped = sorted(n for n in tensors if is_dropped(n))
        kept = {n: t for n, t in tensors.items() if not is_dropped(n)}
        architecture, weights, notes = build(kept, args, checkpoint)
        provenance = {
            "source": "import",
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git_commit": git_commit(),
            "source_file": checkpoint,
            "source_key": source_key,
            "source_sha256": sha256_of(checkpoint),
            "dropped_keys": len(dropped),
        }
        write_fm_file(out, architecture, weights, provenance)
    except Refusal as e:
        sys.stderr.write(f"import_vit: {e}\n")
        return 2

    a = architecture
    params = sum(w.size for w in weights.values())
    groups = sorted({n.split(".")[0] for n in dropped})
    print(f"import_vit: {checkpoint} (weights under {source_key}, sha256 "
          f"{provenance['source_sha256'][:16]}...)")
    print(f"  architecture: image_size={a['image_size']} patch_size={a['patch_size']} "
          f"in_chans={a['in_chans']} width={a['width']} depth={a['depth']} heads={a['heads']} "
          f"mlp_ratio={a['mlp_ratio']:g} layer_norm_eps={a['layer_norm_eps']:g}")
    print(f"  normalisation: mean={','.join(f'{v:g}' for v in a['mean'])} "
          f"std={','.join(f'{v:g}' for v in a['std'])}")
    print(f"  parameters: {params:,} in {len(weights)} tensors")
    print(f"  dropped keys: {len(dropped)}" + (f" ({', '.join(groups)})" if groups else ""))
    for note in ([load_note] if load_note else []) + notes:
        print(f"  note: {note}")
    print(f"  wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
