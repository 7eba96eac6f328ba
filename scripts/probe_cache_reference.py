#!/usr/bin/python3
"""scikit-learn reference for `shiftlab probe` on a feature cache (tests/test_probe_cli.cpp).

usage: probe_cache_reference.py CACHE TAP[,TAP...] C
    Per tap: StandardScaler + LogisticRegression(C, lbfgs, multinomial, tol 1e-10) fitted on the
    labelled rows of source/train/TAP and tested on source/test/TAP and target/test/TAP (labelled
    rows), read with h5py from the schema of src/features/cache.h. Prints one line per tap,
    "TAP SOURCE_ACC TARGET_ACC" (percent): what `shiftlab probe --probe.Cs=C` reports as the linear
    probe's source_acc / target_acc when the cache has those splits.
"""
import sys

import h5py
import numpy as np


def labelled(f, domain, split, tap):
    X = f[f"{domain}/{split}/{tap}/features"][:].astype(np.float64)
    y = f[f"{domain}/{split}/labels"][:]
    keep = y >= 0
    return X[keep], y[keep]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    cache, taps, C = sys.argv[1], sys.argv[2].split(","), float(sys.argv[3])
    with h5py.File(cache, "r") as f:
        for tap in taps:
            X, y = labelled(f, "source", "train", tap)
            sc = StandardScaler().fit(X)
            m = LogisticRegression(C=C, multi_class="multinomial", solver="lbfgs", tol=1e-10, max_iter=100000)
            m.fit(sc.transform(X), y)
            accs = []
            for domain in ("source", "target"):
                Xt, yt = labelled(f, domain, "test", tap)
                accs.append(100.0 * (m.predict(sc.transform(Xt)) == yt).mean())
            print(f"{tap} {accs[0]:.10f} {accs[1]:.10f}")


if __name__ == "__main__":
    main()
