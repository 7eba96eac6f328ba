#!/usr/bin/env python3
"""Loader benchmark, Python side (run with /usr/bin/python3; see loader_bench.sh).

  loader_bench.py make FASHION_TEST_IMAGES.npy OUT_DIR [N]
      builds a JPEG image folder: N Fashion-MNIST test images upscaled to 256×256 (grey → RGB,
      bicubic) in 10 class folders, plus 64 crops/rescalings of sklearn's china.jpg and
      flower.jpg (real 640×427 photos) in a "photo" folder.
  loader_bench.py torch DIR BATCHES BATCH_SIZE WORKERS
      torchvision ImageFolder + DataLoader(num_workers=WORKERS) with RandomResizedCrop(224) +
      RandomHorizontalFlip + ToTensor + Normalize(ImageNet); prints images_per_s.
"""
import os
import sys
import time

import numpy as np


def make(npy, out, n):
    from PIL import Image

    imgs = np.load(npy)
    labels = np.load(npy.replace("_images.npy", "_labels.npy"))
    for c in range(10):
        os.makedirs(os.path.join(out, "c%d" % c), exist_ok=True)
    for i in range(min(n, len(imgs))):
        im = Image.fromarray(imgs[i], "L").resize((256, 256), Image.BICUBIC).convert("RGB")
        im.save(os.path.join(out, "c%d" % labels[i], "%05d.jpg" % i), quality=90)
    photos = "/usr/lib/python3/dist-packages/sklearn/datasets/images"
    os.makedirs(os.path.join(out, "photo"), exist_ok=True)
    rng = np.random.default_rng(0)
    k = 0
    for name in ["china.jpg", "flower.jpg"]:
        src = Image.open(os.path.join(photos, name)).convert("RGB")
        for j in range(32):
            w, h = src.size
            cw, ch = int(w * rng.uniform(0.5, 1)), int(h * rng.uniform(0.5, 1))
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            crop = src.crop((x, y, x + cw, y + ch))
            if j % 2:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            crop.save(os.path.join(out, "photo", "%03d.jpg" % k), quality=90)
            k += 1


def bench_torch(d, batches, bs, workers):
    import torch
    import torchvision.datasets as dsets
    import torchvision.transforms as T

    tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ds = dsets.ImageFolder(d, transform=tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, num_workers=workers, drop_last=True,
                                     persistent_workers=workers > 0)
    warm = 3

    def forever():
        while True:
            for b in dl:
                yield b

    it = forever()
    for _ in range(warm):
        next(it)
    n = 0
    t0 = time.perf_counter()
    for _ in range(batches):
        x, y = next(it)
        n += x.shape[0]
    sec = time.perf_counter() - t0
    print("torchvision ImageFolder + DataLoader(num_workers=%d), batch %d: %d images in %.3f s" % (workers, bs, n, sec))
    print("images_per_s %.1f" % (n / sec))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 2000)
    elif sys.argv[1] == "torch":
        bench_torch(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit("unknown command")
