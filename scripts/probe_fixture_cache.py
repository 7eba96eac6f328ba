#!/usr/bin/python3
"""Writes a synthetic feature cache in the schema of src/features/cache.h (format
"shiftlab-features" v1) with h5py, for the probe/advise tests and the probe benchmark.

usage: probe_fixture_cache.py OUT.h5 [--classes K] [--dim D] [--source-train N] [--source-test N]
                              [--target-train N] [--target-test N] [--target-unlabelled]
                              [--taps layer1,layer2,pooled] [--logits] [--shift S] [--spread S]
                              [--dtype float32|float16] [--seed S]

Per tap t (i = 0..T-1, deeper = more separable): features = class centre · spread·(i+1)/T
+ N(0, 1) noise, D dims; the target domain adds a fixed offset of norm `shift` and scales the
noise by 1.3. `--logits` adds a tap "logits" with K source-model scores (noisy one-hot).
"""
import argparse

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--source-train", type=int, default=300)
    ap.add_argument("--source-test", type=int, default=100)
    ap.add_argument("--target-train", type=int, default=200)
    ap.add_argument("--target-test", type=int, default=100)
    ap.add_argument("--target-unlabelled", action="store_true")
    ap.add_argument("--taps", default="layer1,layer2,pooled")
    ap.add_argument("--logits", action="store_true")
    ap.add_argument("--shift", type=float, default=3.0)
    ap.add_argument("--spread", type=float, default=3.0)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    taps = [t for t in a.taps.split(",") if t]
    K, D = a.classes, a.dim
    centres = rng.normal(size=(K, D))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    offset = rng.normal(size=D)
    offset *= a.shift / np.linalg.norm(offset)
    with h5py.File(a.out, "w") as f:
        f.attrs["format"] = "shiftlab-features"
        f.attrs["format_version"] = 1
        f.attrs["backbone"] = "synthetic"
        f.attrs["weights"] = ""
        f.attrs["weights_sha256"] = ""
        f.attrs["checkpoint"] = ""
        f.attrs["shiftlab_version"] = "fixture"
        f.attrs["created"] = "1970-01-01T00:00:00Z"
        f.attrs["config"] = "[model]\nbackbone = resnet18\nsmall_stem = true\n\n[data.source]\ndataset = mnist\n" \
                            "transform = grey_to_rgb\n\n[data.target]\ndataset = uci-digits\n\n[extract]\ntaps = pooled\n"
        for domain, splits in (("source", (("train", a.source_train), ("test", a.source_test))),
                               ("target", (("train", a.target_train), ("test", a.target_test)))):
            for split, n in splits:
                if n <= 0:
                    continue
                g = f.create_group(f"{domain}/{split}")
                y = rng.integers(0, K, size=n)
                labelled = not (domain == "target" and a.target_unlabelled)
                g.attrs["dataset"] = f"synthetic-{domain}"
                g.attrs["transform"] = ""
                g.attrs["num_classes"] = K
                g.attrs["rows"] = n
                g.create_dataset("labels", data=(y if labelled else np.full(n, -1)).astype(np.int64))
                g.create_dataset("index", data=np.arange(n, dtype=np.int64))
                g.create_dataset("paths", data=[""] * n, dtype=h5py.string_dtype("utf-8"))
                for i, tap in enumerate(taps):
                    sep = a.spread * (i + 1) / len(taps)
                    X = centres[y] * sep + rng.normal(size=(n, D)) * (1.3 if domain == "target" else 1.0)
                    if domain == "target":
                        X = X + offset
                    ds = g.create_dataset(f"{tap}/features", data=X.astype(a.dtype), chunks=(min(n, 256), D))
                    ds.attrs["tap"] = tap
                    ds.attrs["pool"] = "avg"
                    ds.attrs["dtype"] = a.dtype
                    ds.attrs["rows_done"] = n
                if a.logits:
                    Z = np.eye(K)[y] * 2.0 + rng.normal(size=(n, K))
                    ds = g.create_dataset("logits/features", data=Z.astype(a.dtype), chunks=(min(n, 256), K))
                    ds.attrs["tap"] = "logits"
                    ds.attrs["pool"] = "avg"
                    ds.attrs["dtype"] = a.dtype
                    ds.attrs["rows_done"] = n


if __name__ == "__main__":
    main()
