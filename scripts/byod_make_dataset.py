#!/usr/bin/env python3
"""Builds a small "bring your own data" photo -> sketch image-folder data set from a prepared one.

    byod_make_dataset.py PREPARED_DIR OUT_DIR [--per-class N] [--eval-per-class M]

PREPARED_DIR is `shiftlab data prepare` output (e.g. data/mnist: manifest.json + .npy splits).
Writes PNGs (never commit them; OUT_DIR belongs under ./data or another data directory):
  OUT/photo/train/<name>/   N per class, the digits as they are          (prepared split train)
  OUT/photo/val/<name>/     M per class, held-out source images          (prepared split val)
  OUT/sketch/train/<Name>/  N per class, other digits rendered as sketch (prepared split train)
  OUT/sketch/test/<Name>/   M per class, held-out labelled sketches      (prepared split test)
"sketch" = the gradient magnitude (the digit's outline, light strokes on black). Photo folders are lower case
(zero, one, ...), sketch folders capitalised (Zero, One, ...): the example config matches them
with data.class_match = case_insensitive. Deterministic: the first images of each class in order.
"""
import argparse
import json
import os
import shutil

import numpy as np
from PIL import Image

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def load(prepared, split):
    m = json.load(open(os.path.join(prepared, "manifest.json")))
    s = m["splits"][split]
    return np.load(os.path.join(prepared, s["images"])), np.load(os.path.join(prepared, s["labels"]))


def sketch(img):
    f = img.astype(np.float32)
    gx = np.zeros_like(f)
    gy = np.zeros_like(f)
    gx[:, 1:-1] = f[:, 2:] - f[:, :-2]
    gy[1:-1, :] = f[2:, :] - f[:-2, :]
    mag = np.sqrt(gx * gx + gy * gy)
    mag = mag * (255.0 / max(float(mag.max()), 1.0))
    return np.clip(mag, 0, 255).astype(np.uint8)


def write(root, images, labels, per_class, skip, render, capitalise):
    seen = {}
    written = 0
    for i in range(len(labels)):
        c = int(labels[i])
        k = seen.get(c, 0)
        seen[c] = k + 1
        if k < skip or k >= skip + per_class:
            continue
        name = NAMES[c] if c < len(NAMES) else "class%d" % c
        d = os.path.join(root, name.capitalize() if capitalise else name)
        os.makedirs(d, exist_ok=True)
        Image.fromarray(render(images[i])).save(os.path.join(d, "%05d.png" % i))
        written += 1
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prepared")
    ap.add_argument("out")
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--eval-per-class", type=int, default=10)
    a = ap.parse_args()
    for sub in ("photo", "sketch"):
        shutil.rmtree(os.path.join(a.out, sub), ignore_errors=True)
    tr_x, tr_y = load(a.prepared, "train")
    va_x, va_y = load(a.prepared, "val")
    te_x, te_y = load(a.prepared, "test")
    same = lambda x: x
    n = {
        "photo/train": write(os.path.join(a.out, "photo/train"), tr_x, tr_y, a.per_class, 0, same, False),
        "photo/val": write(os.path.join(a.out, "photo/val"), va_x, va_y, a.eval_per_class, 0, same, False),
        # other training digits than the photos: the domains share no image
        "sketch/train": write(os.path.join(a.out, "sketch/train"), tr_x, tr_y, a.per_class, a.per_class, sketch, True),
        "sketch/test": write(os.path.join(a.out, "sketch/test"), te_x, te_y, a.eval_per_class, 0, sketch, True),
    }
    for k, v in n.items():
        print("%s: %d images" % (os.path.join(a.out, k), v))


if __name__ == "__main__":
    main()
