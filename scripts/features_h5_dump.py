#!/usr/bin/env python3
"""Reads a shiftlab feature cache with h5py alone (no shiftlab code) and dumps it for the tests:
   OUT/summary.json  root attributes, per-group attributes + labels/index/paths, per-tap dataset
                     properties (dtype, shape, chunks, compression) and attributes
   OUT/<domain>__<split>__<tap>.npy  the first rows_done rows of features, as float32
Usage: features_h5_dump.py CACHE.h5 OUT_DIR"""
import json
import os
import sys

import h5py
import numpy as np


def attrs(obj):
    out = {}
    for k, v in obj.attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def main():
    path, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    s = {"root": {}, "groups": {}, "taps": {}}
    with h5py.File(path, "r") as f:
        s["root"] = attrs(f)
        for d in f:
            for sp in f[d]:
                g = f[d][sp]
                paths = [p.decode() if isinstance(p, bytes) else p for p in g["paths"][:]]
                s["groups"][f"{d}/{sp}"] = {
                    "attrs": attrs(g),
                    "labels": g["labels"][:].tolist(),
                    "index": g["index"][:].tolist(),
                    "paths": paths,
                    "labels_dtype": str(g["labels"].dtype),
                }
                for t in g:
                    if not isinstance(g[t], h5py.Group):
                        continue
                    ds = g[t]["features"]
                    a = attrs(ds)
                    s["taps"][f"{d}/{sp}/{t}"] = {
                        "attrs": a,
                        "dtype": str(ds.dtype),
                        "shape": list(ds.shape),
                        "chunks": list(ds.chunks) if ds.chunks else None,
                        "compression": ds.compression,
                    }
                    x = ds[: a["rows_done"]].astype(np.float32)
                    np.save(os.path.join(out, f"{d}__{sp}__{t}.npy"), x)
    with open(os.path.join(out, "summary.json"), "w") as fo:
        json.dump(s, fo)


if __name__ == "__main__":
    main()
