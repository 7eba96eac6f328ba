#!/usr/bin/python3
"""Linear-probe benchmark helper (bench/probe_bench.sh).

usage: probe_bench.py make OUT.h5 [N_TRAIN N_TEST DIM CLASSES]
           deterministic Gaussian-mixture features (seed 0) written as a shiftlab feature cache
           (source/train, source/test, tap "pooled", float32; schema of src/features/cache.h)
       probe_bench.py sklearn CACHE TAP C MAX_ITER
           StandardScaler + LogisticRegression(lbfgs, multinomial, C, tol 1e-4, MAX_ITER) fitted on
           source/train/TAP, tested on source/test/TAP (or the last 20 % of train when there is no
           test split); prints "seconds S", "accuracy A", "iterations I" and the objective
           C·Σ loss + ½‖W‖² divided by C·N (the mean form shiftlab reports)
"""
import sys
import time

import h5py
import numpy as np


def make(out, n_train=50000, n_test=10000, dim=2048, classes=65):
    rng = np.random.default_rng(0)
    # class centres in a 64-dim subspace + isotropic noise: about 80-90 % linear-probe accuracy
    basis = rng.normal(size=(64, dim)).astype(np.float32) / np.sqrt(64)
    centres = rng.normal(size=(classes, 64)).astype(np.float32) * 0.55
    with h5py.File(out, "w") as f:
        f.attrs["format"] = "shiftlab-features"
        f.attrs["format_version"] = 1
        f.attrs["backbone"] = "synthetic-gaussian-mixture"
        f.attrs["config"] = ""
        for split, n in (("train", n_train), ("test", n_test)):
            g = f.create_group(f"source/{split}")
            y = rng.integers(0, classes, size=n)
            g.attrs["dataset"] = "synthetic"
            g.attrs["transform"] = ""
            g.attrs["num_classes"] = classes
            g.attrs["rows"] = n
            g.create_dataset("labels", data=y.astype(np.int64))
            g.create_dataset("index", data=np.arange(n, dtype=np.int64))
            g.create_dataset("paths", data=[""] * n, dtype=h5py.string_dtype("utf-8"))
            ds = g.create_dataset("pooled/features", shape=(n, dim), dtype=np.float32, chunks=(min(n, 1024), dim))
            for a in range(0, n, 5000):
                b = min(n, a + 5000)
                X = (centres[y[a:b]] @ basis) * np.sqrt(dim / 64) + rng.normal(size=(b - a, dim)).astype(np.float32)
                ds[a:b] = X.astype(np.float32)
            ds.attrs["tap"] = "pooled"
            ds.attrs["pool"] = "avg"
            ds.attrs["dtype"] = "float32"
            ds.attrs["rows_done"] = n


def run_sklearn(cache, tap, C, max_iter):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    with h5py.File(cache, "r") as f:
        X = f[f"source/train/{tap}/features"][:]
        y = f["source/train/labels"][:]
        if f"source/test/{tap}/features" in f:
            Xt, yt = f[f"source/test/{tap}/features"][:], f["source/test/labels"][:]
        else:
            k = int(len(X) * 0.8)
            X, Xt, y, yt = X[:k], X[k:], y[:k], y[k:]
    X = X.astype(np.float32)
    t0 = time.perf_counter()
    sc = StandardScaler().fit(X)
    Xs = sc.transform(X)
    m = LogisticRegression(C=C, multi_class="multinomial", solver="lbfgs", max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(Xs, y)
    secs = time.perf_counter() - t0
    acc = 100.0 * (m.predict(sc.transform(Xt)) == yt).mean()
    Z = Xs.astype(np.float64) @ m.coef_.T + m.intercept_
    Z -= Z.max(1, keepdims=True)
    lse = np.log(np.exp(Z).sum(1))
    loss = (lse - Z[np.arange(len(y)), np.searchsorted(m.classes_, y)]).mean()
    obj = loss + 0.5 / (C * len(y)) * (m.coef_ ** 2).sum()
    print(f"seconds {secs:.3f}")
    print(f"accuracy {acc:.3f}")
    print(f"iterations {int(m.n_iter_[0])}")
    print(f"objective {obj:.8f}")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "make":
        make(sys.argv[2], *[int(v) for v in sys.argv[3:7]])
    elif len(sys.argv) == 6 and sys.argv[1] == "sklearn":
        run_sklearn(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(__doc__)
