#!/usr/bin/env python3
"""A synthetic chest X-ray set of JPEG files and its manifest, for the data benchmarks (issue 27).

Each image is a smooth grey field (two lung-like ellipses on a brighter mediastinum, a random
brightness gradient) plus fine noise, so that JPEG decoding costs what it costs on a radiograph of
that size (flat images decode much faster). Labels and sex alternate so that every (sex, label)
cell is filled; 80% of the rows are train, the rest test. Files are written by Pillow at quality
90 (CheXpert's JPEGs are 8-bit, quality about 90). The images are a pure function of (--seed, i).

Usage: /usr/bin/python3 scripts/make_jpeg_set.py OUT_DIR --count 200 --width 2048 --height 2500
       (CheXpert-v1.0-small: --width 320 --height 390; the 10^5 memory study: --count 100000 --width 256 --height 256)
Writes OUT_DIR/img/NNNNNN.jpg and OUT_DIR/manifest.csv (path,split,sex,label)."""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def image(rng, width, height):
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width - 0.5, y / height - 0.5
    field = 0.55 + 0.25 * np.exp(-(u / 0.12) ** 2)  # mediastinum
    for side in (-1, 1):  # lungs
        field -= 0.3 * np.exp(-(((u - side * 0.22) / 0.17) ** 2 + ((v + 0.03) / 0.32) ** 2))
    field += rng.uniform(-0.1, 0.1) * u + rng.uniform(-0.1, 0.1) * v
    field += rng.normal(0.0, 0.03, size=field.shape).astype(np.float32)
    return Image.fromarray(np.clip(field * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--height", type=int, default=2500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quality", type=int, default=90)
    args = ap.parse_args()
    if args.count < 8 or args.width < 16 or args.height < 16:
        sys.exit("make_jpeg_set: --count >= 8 and --width, --height >= 16")
    (args.out / "img").mkdir(parents=True, exist_ok=True)
    lines = ["path,split,sex,label"]
    for i in range(args.count):
        rel = f"img/{i:06d}.jpg"
        target = args.out / rel
        if not target.exists():  # a re-run completes an interrupted set
            rng = np.random.default_rng([args.seed, i])
            image(rng, args.width, args.height).save(target.with_suffix(".tmp.jpg"), quality=args.quality)
            target.with_suffix(".tmp.jpg").rename(target)
        split = "train" if i % 5 else "test"
        lines.append(f"{rel},{split},{(i // 2) % 2},{i % 2}")
    (args.out / "manifest.csv").write_text("\n".join(lines) + "\n")
    print(f"make_jpeg_set: {args.count} JPEGs of {args.width}x{args.height} and {args.out / 'manifest.csv'}")


if __name__ == "__main__":
    main()
