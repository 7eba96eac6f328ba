#!/usr/bin/python3
"""Reference values for the loss tests, written from TLlib's formulas (thuml/Transfer-Learning-
Library: tllib/alignment/dan.py, jan.py, tllib/modules/kernels.py, tllib/self_training/mcc.py,
tllib/alignment/coral.py) in float64 torch, independently of the C++ code.

usage: tllib_loss_reference.py DIR
reads DIR/{zs,zt,ys,yt}.txt (rows of numbers; z = features, y = logits; equal batch sizes as
TLlib requires) and writes DIR/ref.txt, one "name value" per line.
"""
import sys

import numpy as np
import torch


def gaussian_kernel(x, alpha=None, sigma=None):
    # TLlib GaussianKernel: track_running_stats -> sigma^2 = alpha * mean(l2_distance_square)
    l2 = ((x.unsqueeze(0) - x.unsqueeze(1)) ** 2).sum(2)
    # (TLlib builds the fixed sigma^2 as a float32 tensor; kept in float64 here so the comparison
    # tests the formula, not that rounding)
    sigma_square = alpha * torch.mean(l2.detach()) if sigma is None else torch.tensor(sigma * sigma, dtype=torch.float64)
    return torch.exp(-l2 / (2 * sigma_square))


def index_matrix(n, linear):
    m = torch.zeros(2 * n, 2 * n, dtype=torch.float64)
    if linear:
        for i in range(n):
            s1, s2 = i, (i + 1) % n
            t1, t2 = s1 + n, s2 + n
            m[s1, s2] = 1. / n
            m[t1, t2] = 1. / n
            m[s1, t2] = -1. / n
            m[s2, t1] = -1. / n
    else:
        for i in range(n):
            for j in range(n):
                if i != j:
                    m[i][j] = 1. / (n * (n - 1))
                    m[i + n][j + n] = 1. / (n * (n - 1))
        for i in range(n):
            for j in range(n):
                m[i][j + n] = -1. / (n * n)
                m[i + n][j] = -1. / (n * n)
    return m


ALPHAS = [2 ** k for k in range(-3, 2)]


def mk_mmd(zs, zt, linear):
    n = zs.size(0)
    f = torch.cat([zs, zt], 0)
    k = sum(gaussian_kernel(f, alpha=a) for a in ALPHAS)
    return (k * index_matrix(n, linear)).sum() + 2. / float(n - 1)


def jmmd(zs, zt, ys, yt, linear):
    n = zs.size(0)
    idx = index_matrix(n, linear)
    k = torch.ones_like(idx)
    f = torch.cat([zs, zt], 0)
    k = k * sum(gaussian_kernel(f, alpha=a) for a in ALPHAS)
    p = torch.cat([torch.softmax(ys, 1), torch.softmax(yt, 1)], 0)
    k = k * gaussian_kernel(p, sigma=0.92)
    return (k * idx).sum() + 2. / float(n - 1)


def entropy(p):
    return (-p * torch.log(p + 1e-5)).sum(1)


def mcc(logits, t):
    b, c = logits.shape
    p = torch.softmax(logits / t, 1)
    w = 1 + torch.exp(-entropy(p).detach())
    w = (b * w / torch.sum(w)).unsqueeze(1)
    ccm = torch.mm((p * w).transpose(1, 0), p)
    ccm = ccm / torch.sum(ccm, dim=1)
    return (torch.sum(ccm) - torch.trace(ccm)) / c


def coral(fs, ft):
    ms, mt = fs.mean(0, keepdim=True), ft.mean(0, keepdim=True)
    cs = (fs - ms).t() @ (fs - ms) / (len(fs) - 1)
    ct = (ft - mt).t() @ (ft - mt) / (len(ft) - 1)
    return (ms - mt).pow(2).mean(), (cs - ct).pow(2).mean()


def load(d, name):
    return torch.from_numpy(np.atleast_2d(np.loadtxt(f"{d}/{name}.txt", dtype=np.float64)))


def main():
    d = sys.argv[1]
    zs, zt, ys, yt = (load(d, n) for n in ("zs", "zt", "ys", "yt"))
    out = {
        "dan_nonlinear": mk_mmd(zs, zt, False),
        "dan_linear": mk_mmd(zs, zt, True),
        "jan_nonlinear": jmmd(zs, zt, ys, yt, False),
        "jan_linear": jmmd(zs, zt, ys, yt, True),
        "mcc": mcc(yt, 2.5),
    }
    out["coral_mean"], out["coral_cov"] = coral(zs, zt)
    with open(f"{d}/ref.txt", "w") as f:
        for k, v in out.items():
            f.write(f"{k} {float(v):.17g}\n")


if __name__ == "__main__":
    main()
