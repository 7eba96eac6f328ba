#!/usr/bin/python3
"""Training-step benchmarks, Python side (issue 9, items 1-3); bench/train_bench.sh runs both sides.

  train_bench.py digits DATA_ROOT METHOD STEPS WARMUP THREADS WORKERS
      TLlib's LeNet, MNIST (train split) -> UCI digits (train split), 64 + 64 images a step,
      DataLoader(num_workers=WORKERS) over the prepared .npy arrays with the transforms of
      configs/digits/mnist_to_uci.ini (normalize(0.5, 0.5); resize(20), pad(4), normalize).
  train_bench.py folder JPEG_DIR METHOD STEPS WARMUP THREADS WORKERS
      torchvision ResNet-18 + bottleneck head (256), ImageFolder at 224 with RandomResizedCrop +
      RandomHorizontalFlip + Normalize(ImageNet), the folder as source (labelled) and as target.
  train_bench.py preloaded JPEG_DIR METHOD STEPS WARMUP THREADS WORKERS
      the same model on one prepared source and one target batch, reused every step (the
      compute-only ceiling).
  train_bench.py digits_preloaded DATA_ROOT METHOD STEPS WARMUP THREADS 0
      the strongest Python peer of the digits step (issue #21 item 0): every image transformed
      once and held as one normalised float tensor per domain, a random batch indexed each step,
      no DataLoader; DANN's discriminator 500 wide without BatchNorm (shiftlab:
      --dann.hidden=500 --dann.bn=false).
METHOD: source_only | dann (GRL + TLlib's DomainDiscriminator: 2 × (Linear 1024, BN, ReLU),
Linear 1; lambda = 2/(1+exp(-10 p)) - 1). SGD(momentum 0.9, weight decay 5e-4, nesterov off),
lr 0.01 with Ganin's annealing 0.01/(1+10p)^0.75, as shiftlab's configs.
TORCH_COMPILE=1 in the environment wraps the backbone, head and discriminator in torch.compile
(PyTorch >= 2; the first steps compile, so give WARMUP steps).
Prints "images_per_s X" over STEPS timed steps after WARMUP untimed ones (images = source +
target rows; source-only reads no target batch).
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


def discriminator(dim, hidden=1024, bn=True):
    if not bn:  # TLlib's DomainDiscriminator(batch_norm=False): Linear, ReLU, Dropout(0.5) per layer
        return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Dropout(0.5), nn.Linear(hidden, 1))
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 1))


def lenet():
    # tllib.vision.models.digits.LeNet (features = 500) + linear head
    body = nn.Sequential(
        nn.Conv2d(1, 20, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(20, 50, kernel_size=5), nn.Dropout2d(p=0.5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(start_dim=1), nn.Linear(50 * 4 * 4, 500), nn.ReLU(), nn.Dropout(p=0.5))
    return body, 500


def resnet18_bottleneck():
    import torchvision
    r = torchvision.models.resnet18()
    r.fc = nn.Identity()
    body = nn.Sequential(r, nn.Linear(512, 256), nn.BatchNorm1d(256), nn.ReLU())
    return body, 256


class NpyDigits(torch.utils.data.Dataset):
    def __init__(self, images, labels, tf):
        self.x, self.y, self.tf = np.load(images), np.load(labels), tf

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        from PIL import Image
        return self.tf(Image.fromarray(self.x[i], "L")), int(self.y[i])


def preloaded_digits(root):
    """Both digit domains transformed once (as configs/digits/mnist_to_uci.ini), as float tensors;
    yields random batches of 64 by indexing."""
    import torchvision.transforms.functional as TF
    def load(name, prep):
        x = torch.from_numpy(np.load(f"{root}/{name}/train_images.npy")).unsqueeze(1)
        y = torch.from_numpy(np.load(f"{root}/{name}/train_labels.npy")).long()
        return prep(x).float().div(255).sub(0.5).div(0.5).contiguous(), y
    xs, ys = load("mnist", lambda x: x)
    xt, yt = load("uci-digits", lambda x: TF.pad(TF.resize(x, [20, 20], antialias=True), [4]))
    def batches(x, y):
        while True:
            i = torch.randint(len(x), (64,))
            yield x[i], y[i]
    return batches(xs, ys), batches(xt, yt), int(ys.max()) + 1


def forever(dl):
    while True:
        for b in dl:
            yield b


def loaders(kind, root, workers, size=224):
    import torchvision.transforms as T
    kw = dict(batch_size=64, shuffle=True, num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    if kind == "digits":
        norm = T.Normalize([0.5], [0.5])
        src = NpyDigits(f"{root}/mnist/train_images.npy", f"{root}/mnist/train_labels.npy",
                        T.Compose([T.ToTensor(), norm]))
        tgt = NpyDigits(f"{root}/uci-digits/train_images.npy", f"{root}/uci-digits/train_labels.npy",
                        T.Compose([T.Resize(20), T.Pad(4), T.ToTensor(), norm]))
    else:
        import torchvision.datasets as dsets
        tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(),
                        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        src = dsets.ImageFolder(root, transform=tf)
        tgt = dsets.ImageFolder(root, transform=tf)
    ncls = int(max(src.y) + 1) if kind == "digits" else len(src.classes)
    return forever(torch.utils.data.DataLoader(src, **kw)), forever(torch.utils.data.DataLoader(tgt, **kw)), ncls


def main():
    kind, root, method, steps, warmup, threads, workers = sys.argv[1:8]
    size = int(sys.argv[8]) if len(sys.argv) > 8 else 224  # folder / preloaded crop size
    steps, warmup, threads, workers = int(steps), int(warmup), int(threads), int(workers)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if kind == "digits_preloaded":
        src_it, tgt_it, ncls = preloaded_digits(root)
    else:
        src_it, tgt_it, ncls = loaders("digits" if kind == "digits" else "folder", root, workers, size)
    body, dim = lenet() if kind.startswith("digits") else resnet18_bottleneck()
    head = nn.Linear(dim, ncls)
    disc = None
    if method == "dann":
        disc = discriminator(dim, 500, False) if kind == "digits_preloaded" else discriminator(dim)
    params = list(body.parameters()) + list(head.parameters()) + (list(disc.parameters()) if disc else [])
    if os.environ.get("TORCH_COMPILE") == "1":
        body, head = torch.compile(body), torch.compile(head)
        disc = torch.compile(disc) if disc else None
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    total = warmup + steps
    fixed = None
    if kind == "preloaded":
        fixed = (next(src_it), next(tgt_it))
    body.train(); head.train()
    if disc:
        disc.train()
    t0, images = None, 0
    for step in range(total):
        if step == warmup:
            t0 = time.perf_counter()
        p = step / total
        for g in opt.param_groups:
            g["lr"] = 0.01 / (1 + 10 * p) ** 0.75
        if disc:
            (xs, ys), (xt, _) = fixed if fixed else (next(src_it), next(tgt_it))
            f = body(torch.cat([xs, xt]))
        else:  # source-only reads no target batch
            xs, ys = fixed[0] if fixed else next(src_it)
            f = body(xs)
        ns = xs.size(0)
        images += f.size(0) if step >= warmup else 0
        loss = F.cross_entropy(head(f[:ns]), ys)
        if disc:
            lam = 2.0 / (1.0 + math.exp(-10 * p)) - 1.0
            d = disc(GradReverse.apply(f, lam)).squeeze(1)
            dl = torch.cat([torch.ones(ns), torch.zeros(f.size(0) - ns)])
            loss = loss + F.binary_cross_entropy_with_logits(d, dl)
        if not math.isfinite(loss.item()):  # the same per-step host sync as shiftlab's CPU NaN guard
            raise SystemExit("non-finite loss")
        opt.zero_grad()
        loss.backward()
        opt.step()
    el = time.perf_counter() - t0
    print("images_per_s %.2f" % (images / el))
    print("seconds %.3f" % el)
    import resource
    # this process only: DataLoader workers (WORKERS > 0) are separate processes, not counted
    print("peak_rss_mib %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))


if __name__ == "__main__":
    main()
