#!/usr/bin/python3
"""torchvision side of bench/backbones_bench.sh: forward throughput of torchvision 0.14 backbones
(classification head removed, as shiftlab's backbones), eval mode, torch.no_grad(), random input.

usage: backbones_bench.py NAME SIZE [BATCH=8] [THREADS=2] [ITERS=5] [WARMUP=1]
prints the same line as bench/backbone_bench.cpp:
  <name> params <P> size <S> batch <B> threads <T> ms_best <min> ms_median <median> cpu_ms <median>
  images_per_s <B / min> images_per_cpu_s <B / median CPU seconds (all threads)>
"""
import sys
import time

import torch
import torch.nn as nn
import torchvision


def backbone(name):
    m = getattr(torchvision.models, name)(weights=None)
    if name.startswith("mobilenet_v3"):
        m.classifier[3] = nn.Identity()  # classifier.0 + hard-swish stay (shiftlab's pooled features)
    elif name.startswith("convnext"):
        m.classifier[2] = nn.Identity()  # classifier.0 (LayerNorm2d) stays
    elif name.startswith("resnet"):
        m.fc = nn.Identity()
    elif name.startswith("vit"):
        m.heads = nn.Identity()
    else:  # efficientnet (Dropout + Linear), densenet (Linear)
        m.classifier = nn.Identity()
    return m.eval()


def main():
    name, size = sys.argv[1], int(sys.argv[2])
    rest = [int(v) for v in sys.argv[3:7]]
    batch, threads, iters, warmup = rest + [8, 2, 5, 1][len(rest):]
    torch.set_num_threads(threads)
    m = backbone(name)
    params = sum(p.numel() for p in m.parameters())
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        for _ in range(warmup):
            m(x)
        ms, cpu = [], []
        for _ in range(iters):
            c0, t0 = time.process_time(), time.perf_counter()
            m(x)
            ms.append(1000 * (time.perf_counter() - t0))
            cpu.append(1000 * (time.process_time() - c0))
    ms.sort()
    cpu.sort()
    best, med, cmed = ms[0], ms[len(ms) // 2], cpu[len(cpu) // 2]
    print(f"{name} params {params} size {size} batch {batch} threads {threads} ms_best {best:.1f} ms_median {med:.1f} "
          f"cpu_ms {cmed:.1f} images_per_s {1000 * batch / best:.2f} images_per_cpu_s {1000 * batch / cmed:.2f}",
          flush=True)


if __name__ == "__main__":
    main()
