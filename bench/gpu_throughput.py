#!/usr/bin/env python3
"""The Python peer of `gpu_check step` (bench/gpu_check.cpp), run by scripts/gpu_check.sh.

The same training step in plain PyTorch (no torchvision: the GPU machine has none):
torchvision's ResNet-50 layout written out in torch.nn (random weights), the bottleneck head
(Linear 2048->256, BatchNorm1d, ReLU) + linear classifier, TLlib's DANN discriminator
(2 x [Linear 1024, BatchNorm1d, ReLU], Linear 1) behind a gradient-reversal layer, source and
target batches through the backbone together, SGD(lr 0.01, momentum 0.9, weight decay 5e-4).
As in shiftlab's trainer: the model runs under autocast (bf16) and the features are cast to
float32 for the losses, which run outside autocast; cudnn.benchmark on; channels_last optional;
batches made once on the device (no loader).

  gpu_throughput.py [--device cuda] [--mode eager|compile] [--batch 64] [--size 224]
                    [--steps 60] [--warmup 15] [--amp bf16|none] [--channels-last 1]
                    [--classes 31] [--compile-backend inductor]

--mode compile wraps the classifier (backbone + bottleneck + head) in torch.compile; the
discriminator, losses and optimizer stay eager. Prints one JSON object on stdout.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)  # torchvision v1.5
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + idt)


class ResNet50(nn.Module):
    """torchvision.models.resnet50 without the fc layer: N x 3 x H x W -> N x 2048."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.inplanes = 64
        self.layer1 = self._layer(64, 3, 1)
        self.layer2 = self._layer(128, 4, 2)
        self.layer3 = self._layer(256, 6, 2)
        self.layer4 = self._layer(512, 3, 2)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _layer(self, planes, blocks, stride):
        down = None
        if stride != 1 or self.inplanes != planes * 4:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                                 nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, down)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class Classifier(nn.Module):
    """shiftlab's models::Classifier with head = bottleneck: features (N x 256) and logits."""

    def __init__(self, classes, dim=256):
        super().__init__()
        self.backbone = ResNet50()
        self.bottleneck = nn.Sequential(nn.Linear(2048, dim), nn.BatchNorm1d(dim), nn.ReLU())
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        f = self.bottleneck(self.backbone(x))
        return f, self.head(f)


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


def discriminator(dim, hidden=1024):
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--compile-backend", default="inductor")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--amp", choices=["bf16", "fp16", "none"], default="bf16")
    ap.add_argument("--channels-last", type=int, default=1)
    ap.add_argument("--classes", type=int, default=31)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    amp = a.amp if cuda else "none"  # shiftlab's autocast is CUDA-only
    cl = bool(a.channels_last) and cuda
    if cuda:
        torch.backends.cudnn.benchmark = True
    out = {"mode": a.mode, "device": str(dev), "torch": torch.__version__, "batch_source": a.batch,
           "batch_target": a.batch, "size": a.size, "amp": amp, "channels_last": cl, "cudnn_benchmark": cuda,
           "tf32_cudnn": torch.backends.cudnn.allow_tf32, "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
           "optimizer": "torch.optim.SGD (default foreach) momentum 0.9 weight_decay 5e-4 lr 0.01"}

    torch.manual_seed(0)
    model = Classifier(a.classes).to(dev)
    disc = discriminator(256).to(dev)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    params = list(model.parameters()) + list(disc.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    fwd = model
    if a.mode == "compile":
        fwd = torch.compile(model, backend=a.compile_backend)
        out["compile_backend"] = a.compile_backend
        out["compile_scope"] = "classifier (backbone + bottleneck + head); discriminator, losses, optimizer eager"
    model.train()
    disc.train()

    b = a.batch
    x = torch.randn(2 * b, 3, a.size, a.size, device=dev)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    ys = torch.randint(0, a.classes, (b,), device=dev)
    dom = torch.cat([torch.ones(b, device=dev), torch.zeros(b, device=dev)])
    total = a.warmup + a.steps
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    def step(i):
        p = i / total
        lam = 2.0 / (1.0 + math.exp(-10 * p)) - 1.0
        with torch.autocast(device_type="cuda", dtype=dtype, enabled=dtype is not None):
            f, logits = fwd(x)
        f, logits = f.float(), logits.float()
        ce = F.cross_entropy(logits[:b], ys)
        d = disc(GradReverse.apply(f, lam)).squeeze(1)
        # shiftlab's domain_bce: 0.5 * (mean softplus(-d_s) + mean softplus(d_t))
        dl = 0.5 * (F.softplus(-d[:b]).mean() + F.softplus(d[b:]).mean())
        loss = ce + dl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    t0 = time.perf_counter()
    loss = None
    for i in range(a.warmup):
        loss = step(i)
        if i == 0:
            sync()
            out["first_step_seconds"] = time.perf_counter() - t0  # includes compilation
    sync()
    out["warmup_seconds"] = time.perf_counter() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    t1 = time.perf_counter()
    for i in range(a.warmup, total):
        loss = step(i)
    sync()
    el = time.perf_counter() - t1
    out.update(steps=a.steps, warmup=a.warmup, seconds=el, step_ms=1000 * el / a.steps,
               images_per_s=2 * b * a.steps / el, final_loss=float(loss), loss_finite=math.isfinite(float(loss)))
    if cuda:
        out["peak_allocated_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
        out["peak_reserved_mib"] = torch.cuda.max_memory_reserved(dev) / 2**20
    else:
        out["peak_allocated_mib"] = None
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
