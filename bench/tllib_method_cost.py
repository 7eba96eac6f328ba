#!/usr/bin/env python3
"""The peer of bench/method_cost.sh's digits family: what each DA term costs per step in TLlib.

Same step as shiftlab's (configs/digits/mnist_to_uci.ini): TLlib's digits LeNet (conv 20-5, pool,
conv 50-5, dropout, pool, fc 800-500, dropout) with a linear 500 -> 10 head, source and target
batches of 64 forwarded together, cross-entropy on the source, SGD (momentum 0.9, weight decay 5e-4),
plus one alignment term built from TLlib's own modules (the public thuml/Transfer-Learning-Library,
imported from TLLIB_DIR) with the settings shiftlab's defaults mirror: DomainDiscriminator(500, 1024)
for DANN, (5000, 1024) for CDAN (multilinear map), MK-MMD with Gaussian kernels 2^-3..2^1 (biased /
TLlib's linear index matrix), JMMD adding a sigma = 0.92 kernel on the softmax, CORAL, MCC (T = 2.5),
2e-4 * BSP (largest singular value per domain; TLlib's trade-off), 0.05 * stepwise AFN (delta 1), MDD (margin 4, 500-1024-10
adversarial head behind a warm-start GRL). `entropy` is the baseline: a softmax entropy over the
target logits, so every row forwards the same 128 images and the difference is the term's own cost.
Images: preloaded MNIST train rows (source) and UCI digits resized to 20 px and padded to 28 (target),
normalised with (0.5, 0.5) like the configs. Each method runs ROUNDS times interleaved; the median
ms per step is reported.

Usage: tllib_method_cost.py TLLIB_DIR DATA_DIR [THREADS] [STEPS] [WARMUP] [ROUNDS] [METHODS...]
Prints one line per method: `name ms_per_step overhead_percent`.
"""
import importlib.abc
import importlib.machinery
import os
import sys
import time
import types

# OpenBLAS's own thread pool at 1, as shiftlab's train sets it (libtorch's intra-op threads do the
# parallel work; a second pool of the same size beside them halves the step rate on 2 cores)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

# TLlib still uses the aliases numpy removed in 1.24
np.float = float
np.int = int


class _Stub(types.ModuleType):
    """Packages TLlib imports at package level but these modules never use (metrics tables,
    progress bars, numba-jitted ranking code)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *a, **k: (a[0] if len(a) == 1 and callable(a[0]) and not k else (lambda f: f))


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    ROOTS = ("numba", "prettytable", "tqdm", "timm", "qpsolvers", "webcolors")

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.ROOTS:
            try:  # a real installation wins
                if importlib.machinery.PathFinder.find_spec(name.split(".")[0]) is not None:
                    return None
            except (ImportError, ValueError):
                pass
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Stub(spec.name)

    def exec_module(self, module):
        pass


def main():
    tllib_dir, data_dir = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    warmup = int(sys.argv[5]) if len(sys.argv) > 5 else 20
    rounds = int(sys.argv[6]) if len(sys.argv) > 6 else 2
    methods = sys.argv[7:] or ["entropy", "dann", "cdan", "cdan+E", "dan:biased", "dan:linear", "jan", "coral",
                               "mcc", "0.0002*bsp", "0.05*afn", "mdd"]
    sys.meta_path.insert(0, _StubFinder())
    sys.path.insert(0, tllib_dir)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from tllib.alignment.cdan import ConditionalDomainAdversarialLoss
    from tllib.alignment.coral import CorrelationAlignmentLoss
    from tllib.alignment.dan import MultipleKernelMaximumMeanDiscrepancy
    from tllib.alignment.dann import DomainAdversarialLoss
    from tllib.alignment.jan import JointMultipleKernelMaximumMeanDiscrepancy
    from tllib.alignment.bsp import BatchSpectralPenalizationLoss
    from tllib.alignment.mdd import ClassificationMarginDisparityDiscrepancy
    from tllib.modules.domain_discriminator import DomainDiscriminator
    from tllib.modules.entropy import entropy
    from tllib.modules.grl import WarmStartGradientReverseLayer
    from tllib.modules.kernels import GaussianKernel
    from tllib.normalization.afn import AdaptiveFeatureNorm
    from tllib.self_training.mcc import MinimumClassConfusionLoss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    src = np.load(f"{data_dir}/mnist/train_images.npy")[:4096].astype(np.float32) / 255.0
    tgt = np.load(f"{data_dir}/uci-digits/train_images.npy").astype(np.float32)
    tgt = tgt / tgt.max()
    xs_all = (torch.from_numpy(src).unsqueeze(1) - 0.5) / 0.5
    ys_all = torch.from_numpy(np.load(f"{data_dir}/mnist/train_labels.npy")[:4096].astype(np.int64))
    xt = F.interpolate(torch.from_numpy(tgt).unsqueeze(1), size=(20, 20), mode="bilinear", align_corners=False)
    xt_all = (F.pad(xt, (4, 4, 4, 4)) - 0.5) / 0.5
    g = torch.Generator().manual_seed(0)

    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(20, 50, 5),
                                      nn.Dropout2d(0.5), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
                                      nn.Linear(800, 500), nn.ReLU(), nn.Dropout(0.5))
            self.head = nn.Linear(500, 10)

        def forward(self, x):
            f = self.body(x)
            return f, self.head(f)

    def gaussian_kernels():
        return [GaussianKernel(alpha=2 ** k) for k in range(-3, 2)]

    def build(method):
        """(term(f_s, f_t, y_s, y_t) -> loss, extra parameters)"""
        if method == "entropy":
            return (lambda fs, ft, ys, yt: entropy(F.softmax(yt, dim=1), reduction="mean")), []
        if method == "dann":
            m = DomainAdversarialLoss(DomainDiscriminator(500, 1024))
            return (lambda fs, ft, ys, yt: m(fs, ft)), list(m.parameters())
        if method in ("cdan", "cdan+E"):
            m = ConditionalDomainAdversarialLoss(DomainDiscriminator(5000, 1024), entropy_conditioning=method == "cdan+E",
                                                 num_classes=10, features_dim=500)
            return (lambda fs, ft, ys, yt: m(ys, fs, yt, ft)), list(m.parameters())
        if method.startswith("dan:"):
            m = MultipleKernelMaximumMeanDiscrepancy(gaussian_kernels(), linear=method == "dan:linear")
            return (lambda fs, ft, ys, yt: m(fs, ft)), []
        if method == "jan":
            m = JointMultipleKernelMaximumMeanDiscrepancy(
                (gaussian_kernels(), (GaussianKernel(sigma=0.92, track_running_stats=False),)), linear=False)
            return (lambda fs, ft, ys, yt: m((fs, F.softmax(ys, dim=1)), (ft, F.softmax(yt, dim=1)))), []
        if method == "coral":
            m = CorrelationAlignmentLoss()
            return (lambda fs, ft, ys, yt: m(fs, ft)), []
        if method == "mcc":
            m = MinimumClassConfusionLoss(temperature=2.5)
            return (lambda fs, ft, ys, yt: m(yt)), []
        if method == "0.0002*bsp":  # TLlib's trade-off for BSP (at 1 the penalty alone diverges)
            m = BatchSpectralPenalizationLoss()
            return (lambda fs, ft, ys, yt: 2e-4 * m(fs, ft)), []
        if method == "0.05*afn":
            m = AdaptiveFeatureNorm(1.0)
            return (lambda fs, ft, ys, yt: 0.05 * (m(fs) + m(ft))), []
        if method == "mdd":
            adv = nn.Sequential(nn.Linear(500, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 10))
            grl = WarmStartGradientReverseLayer(alpha=1.0, lo=0.0, hi=0.1, max_iters=1000, auto_step=True)
            m = ClassificationMarginDisparityDiscrepancy(margin=4.0)

            def term(fs, ft, ys, yt):
                a = adv(grl(torch.cat((fs, ft), 0)))
                return -m(ys, a[: fs.size(0)], yt, a[fs.size(0):])
            return term, list(adv.parameters())
        raise SystemExit(f"unknown method {method}")

    def run(method):
        torch.manual_seed(0)
        net = LeNet()
        term, extra = build(method)
        opt = torch.optim.SGD(list(net.parameters()) + extra, lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
        net.train()
        t0 = None
        for step in range(warmup + steps):
            if step == warmup:
                t0 = time.perf_counter()
            i = torch.randint(0, xs_all.size(0), (64,), generator=g)
            j = torch.randint(0, xt_all.size(0), (64,), generator=g)
            x_s, y = xs_all[i], ys_all[i]
            f, logits = net(torch.cat((x_s, xt_all[j]), 0))
            fs, ft = f[:64], f[64:]
            ys, yt = logits[:64], logits[64:]
            loss = F.cross_entropy(ys, y) + term(fs, ft, ys, yt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return 1000 * (time.perf_counter() - t0) / steps

    times = {m: [] for m in methods}
    for _ in range(rounds):
        for m in methods:
            try:
                times[m].append(run(m))
            except (RuntimeError, ValueError) as e:  # e.g. a diverging term: report it, keep going
                print(f"# {m}: failed: {str(e).splitlines()[0]}")
    med = {m: sorted(v)[(len(v) - 1) // 2] for m, v in times.items() if v}
    base = med.get("entropy")
    print(f"# TLlib modules, torch {torch.__version__}, {threads} threads, {steps} steps after {warmup}, "
          f"median of {rounds}")
    for m in med:
        over = 100 * (med[m] / base - 1) if base else float("nan")
        print(f"{m} {med[m]:.2f} {over:+.1f} " + " ".join(f"{t:.2f}" for t in times[m]))


if __name__ == "__main__":
    main()
