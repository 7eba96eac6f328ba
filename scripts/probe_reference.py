#!/usr/bin/python3
"""Reference values for the probe tests (tests/test_probe_*.cpp), computed independently of the
C++ code: scikit-learn for the linear and kNN probes, numpy implementations written from the
papers' formulas for the transferability scores.

usage: probe_reference.py logreg DIR   sklearn LogisticRegression(lbfgs, multinomial) on a seeded
                                       Gaussian mixture: DIR/{X,y,Xt,yt}.npy and DIR/ref_<C>_*.npy
       probe_reference.py knn DIR      KNeighborsClassifier(metric='cosine', brute) predictions
       probe_reference.py transfer DIR LogME, LEEP, NCE and H-score of DIR/{F,y,Z}.npy

LogME (You et al., ICML 2021, Alg. 1): per class c with target y_c = 1[y == c], maximise the
evidence of Bayesian linear regression y_c = F m + noise, m ~ N(0, α⁻¹I), noise ~ N(0, β⁻¹I) by the
MacKay fixed point  A = αI + βFᵀF,  m = βA⁻¹Fᵀy,  γ = Σ_i βσ_i/(α + βσ_i) (σ_i eigenvalues of FᵀF),
α = γ/mᵀm,  β = (N − γ)/‖y − Fm‖²; the log evidence is
  L = D/2 log α + N/2 log β − ½ log|A| − β/2 ‖y − Fm‖² − α/2 mᵀm − N/2 log 2π,
and LogME = mean over classes of L/N. Here A is formed and solved densely (no eigenbasis), and the
iteration runs to |Δα|/α, |Δβ|/β < 1e-10.
LEEP (Nguyen et al., ICML 2020): θ_i = source-model softmax of sample i over Z source classes;
P(y, z) = (1/n) Σ_{i: y_i = y} θ_iz;  P(y|z) = P(y, z)/Σ_y' P(y', z);
LEEP = (1/n) Σ_i log Σ_z P(y_i|z) θ_iz.
NCE (Tran et al., ICCV 2019) with the hard source labels z_i = argmax θ_i:
NCE = Σ_{y,z} P(y, z) log P(y|z) (empirical joint of (y_i, z_i)).
H-score (Bao et al., ICIP 2019): tr(cov(F)⁻¹ cov(E[F|y])), covariances with 1/n.
"""
import os
import sys

import numpy as np


def mixture(rng, n, d, k, spread):
    centers = rng.normal(size=(k, d)) * spread
    y = rng.integers(0, k, size=n)
    X = centers[y] + rng.normal(size=(n, d))
    return X.astype(np.float32), y.astype(np.int64)


def logreg(out):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(7)
    X, y = mixture(rng, 400, 12, 4, 0.8)
    X[:, 3] = X[:, 3] * 5 + 2  # unequal scales: standardisation matters
    Xt, yt = X[300:], y[300:]
    X, y = X[:300], y[:300]
    np.save(f"{out}/X.npy", X)
    np.save(f"{out}/y.npy", y)
    np.save(f"{out}/Xt.npy", Xt)
    np.save(f"{out}/yt.npy", yt)
    for C in (0.01, 1.0):
        # raw features
        m = LogisticRegression(C=C, multi_class="multinomial", solver="lbfgs", tol=1e-12, max_iter=100000)
        m.fit(X.astype(np.float64), y)
        np.save(f"{out}/ref_{C}_coef.npy", m.coef_)            # K×D
        np.save(f"{out}/ref_{C}_intercept.npy", m.intercept_)  # K
        np.save(f"{out}/ref_{C}_pred.npy", m.predict(Xt.astype(np.float64)).astype(np.int64))
        # standardised with the training statistics (the linear probe)
        sc = StandardScaler().fit(X.astype(np.float64))
        m2 = LogisticRegression(C=C, multi_class="multinomial", solver="lbfgs", tol=1e-12, max_iter=100000)
        m2.fit(sc.transform(X.astype(np.float64)), y)
        np.save(f"{out}/ref_{C}_std_coef.npy", m2.coef_)
        np.save(f"{out}/ref_{C}_std_acc.npy", np.array([100.0 * (m2.predict(sc.transform(Xt)) == yt).mean()]))


def knn(out):
    from sklearn.neighbors import KNeighborsClassifier
    rng = np.random.default_rng(11)
    X, y = mixture(rng, 500, 16, 5, 0.5)
    X = X + 0.3  # cosine on non-centred data
    np.save(f"{out}/X.npy", X[:350])
    np.save(f"{out}/y.npy", y[:350])
    np.save(f"{out}/Xt.npy", X[350:])
    for k in (1, 5, 10):
        m = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(X[:350], y[:350])
        np.save(f"{out}/ref_k{k}.npy", m.predict(X[350:]).astype(np.int64))


def logme(F, y):
    F = F.astype(np.float64)
    N, D = F.shape
    FtF = F.T @ F
    sig = np.linalg.eigvalsh(FtF)
    out = []
    for c in range(int(y.max()) + 1):
        t = (y == c).astype(np.float64)
        a, b = 1.0, 1.0
        for _ in range(1000):
            A = a * np.eye(D) + b * FtF
            m = b * np.linalg.solve(A, F.T @ t)
            g = np.sum(b * sig / (a + b * sig))
            res = np.sum((t - F @ m) ** 2)
            a2, b2 = g / (m @ m), (N - g) / res
            done = abs(a2 - a) / a < 1e-10 and abs(b2 - b) / b < 1e-10
            a, b = a2, b2
            if done:
                break
        A = a * np.eye(D) + b * FtF
        m = b * np.linalg.solve(A, F.T @ t)
        res = np.sum((t - F @ m) ** 2)
        L = (D / 2 * np.log(a) + N / 2 * np.log(b) - 0.5 * np.linalg.slogdet(A)[1] - b / 2 * res
             - a / 2 * (m @ m) - N / 2 * np.log(2 * np.pi))
        out.append(L / N)
    return float(np.mean(out))


def leep(theta, y):
    n, Z = theta.shape
    K = int(y.max()) + 1
    joint = np.zeros((K, Z))
    for i in range(n):
        joint[y[i]] += theta[i] / n
    cond = joint / joint.sum(0, keepdims=True)
    return float(np.mean([np.log(cond[y[i]] @ theta[i]) for i in range(n)]))


def nce(theta, y):
    n, Z = theta.shape
    z = theta.argmax(1)
    K = int(y.max()) + 1
    joint = np.zeros((K, Z))
    for i in range(n):
        joint[y[i], z[i]] += 1.0 / n
    pz = joint.sum(0)
    s = 0.0
    for a in range(K):
        for b in range(Z):
            if joint[a, b] > 0:
                s += joint[a, b] * np.log(joint[a, b] / pz[b])
    return s


def hscore(F, y):
    F = F.astype(np.float64)
    Fc = F - F.mean(0)
    cov = Fc.T @ Fc / len(F)
    G = np.zeros_like(Fc)
    for c in np.unique(y):
        G[y == c] = Fc[y == c].mean(0)
    covg = G.T @ G / len(F)
    return float(np.trace(np.linalg.pinv(cov, rcond=1e-15) @ covg))


def transfer(out):
    rng = np.random.default_rng(5)
    F, y = mixture(rng, 240, 8, 3, 0.7)
    Z = rng.normal(size=(240, 6)) + np.eye(6)[(y * 2) % 6] * 2.0  # source logits correlated with y
    np.save(f"{out}/F.npy", F)
    np.save(f"{out}/y.npy", y)
    np.save(f"{out}/Z.npy", Z.astype(np.float32))
    e = np.exp(Z - Z.max(1, keepdims=True))
    theta = e / e.sum(1, keepdims=True)
    with open(f"{out}/ref.txt", "w") as f:
        f.write(f"logme {logme(F, y):.17g}\n")
        f.write(f"leep {leep(theta, y):.17g}\n")
        f.write(f"nce {nce(theta, y):.17g}\n")
        f.write(f"hscore {hscore(F, y):.17g}\n")
        Fw = rng.normal(size=(12, 30)).astype(np.float32)  # N < D
        yw = np.arange(12) % 3
        np.save(f"{out}/Fw.npy", Fw)
        np.save(f"{out}/yw.npy", yw)
        f.write(f"logme_wide {logme(Fw, yw):.17g}\n")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("logreg", "knn", "transfer"):
        sys.exit(__doc__)
    os.makedirs(sys.argv[2], exist_ok=True)
    {"logreg": logreg, "knn": knn, "transfer": transfer}[sys.argv[1]](sys.argv[2])
