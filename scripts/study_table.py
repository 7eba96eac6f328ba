#!/usr/bin/env python3
"""Table and picture of the transfer-strategy study (scripts/transfer_study.sh).

Usage: study_table.py ROOT [SVG_OUT]
Reads ROOT/n<N>/<strategy>/seed<S>/ (a run directory with summary.json, or probe/probe.json for
the linear probe) and prints a Markdown table: target-test accuracy (%) of the checkpoint selected
on the (few-label) source-val split, mean ± std over seeds (n-1), per labels-per-class column,
plus trainable parameters. Writes ROOT/study.md, ROOT/study.csv and an SVG (accuracy vs labels
per class, log scale) to SVG_OUT or ROOT/study.svg.
"""
import glob
import json
import math
import os
import re
import statistics
import sys

ORDER = ["scratch", "probe", "head", "residual", "bottleneck", "lora", "top1", "full", "two_phase"]
NAMES = {
    "scratch": "scratch (random init, all layers)",
    "probe": "linear probe (L-BFGS on frozen features)",
    "head": "feature extraction (frozen backbone, linear head, SGD)",
    "residual": "residual adapters @layer3,4 (frozen backbone)",
    "bottleneck": "bottleneck adapters dim 64 @layer1-4 (frozen)",
    "lora": "LoRA r=8 @layer3,4 convs (frozen)",
    "top1": "top-1 fine-tune (layer4 + head)",
    "full": "full fine-tune, discriminative LRs (x0.5/group)",
    "two_phase": "two-phase: head, then full (x0.5/group)",
}
COLORS = ["#444444", "#1f77b4", "#2ca02c", "#98df8a", "#bcbd22", "#17becf", "#ff7f0e", "#d62728", "#9467bd"]


def fmt(v):
    if not v:
        return "—"
    if len(v) == 1:
        return f"{v[0]:.2f} (1 seed)"
    return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}"


def trainable(run_dir):
    log = os.path.join(run_dir, "log.txt")
    if not os.path.exists(log):
        return None
    m = None
    for line in open(log, errors="replace"):
        mm = re.search(r"trainable parameters: model (\d+) of (\d+)", line)
        if mm:
            m = (int(mm.group(1)), int(mm.group(2)))
    return m


def collect(root):
    res = {}  # (label_tag, strategy) -> [acc...]
    params = {}
    for d in sorted(glob.glob(os.path.join(root, "n*", "*", "seed*"))):
        parts = d.split(os.sep)
        tag, strat = parts[-3][1:], parts[-2]
        acc = None
        pj = os.path.join(d, "probe", "probe.json")
        if os.path.exists(pj):
            t = json.load(open(pj))["taps"][0]
            acc = t["linear"].get("target_acc")
            params[strat] = (t["dim"] * t["num_classes"] + t["num_classes"], None)  # weights + biases
        else:
            for sj in glob.glob(os.path.join(d, "*", "summary.json")):
                s = json.load(open(sj))
                if s.get("status") == "completed":
                    acc = s["selected"].get("target_test_acc")
                    p = trainable(os.path.dirname(sj))
                    if p:
                        params[strat] = p
        if acc is not None:
            res.setdefault((tag, strat), []).append(float(acc))
    return res, params


def main():
    root = sys.argv[1]
    svg_out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "study.svg")
    res, params = collect(root)
    tags = sorted({t for t, _ in res}, key=lambda t: 10**9 if t == "all" else int(t))
    strats = [s for s in ORDER if any((t, s) in res for t in tags)]
    head = "| strategy | trainable | " + " | ".join(f"{t} labels/class" if t != "all" else "all (~700/class)" for t in tags) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(tags)]
    csv = ["strategy,labels_per_class,mean,std,seeds"]
    for s in strats:
        p = params.get(s)
        ptxt = "" if not p else f"{p[0]:,}" if p[1] is None else f"{p[0]:,} ({100 * p[0] / p[1]:.3g} %)"
        cells = []
        for t in tags:
            v = res.get((t, s), [])
            cells.append(fmt(v))
            if v:
                sd = statistics.stdev(v) if len(v) > 1 else 0.0
                csv.append(f"{s},{t},{statistics.mean(v):.4f},{sd:.4f},{len(v)}")
        lines.append(f"| {NAMES.get(s, s)} | {ptxt} | " + " | ".join(cells) + " |")
    # seed 004: "feature extraction gives 80-90 % of the benefit of full fine-tuning" — the
    # benefit being the gain over scratch; when pretraining does not beat scratch, say that instead
    notes = []
    for t in tags:
        m = {s: statistics.mean(res[(t, s)]) for s in strats if (t, s) in res}
        if "scratch" not in m:
            continue
        pre = {s: v for s, v in m.items() if s != "scratch"}
        if not pre:
            continue
        best = max(pre, key=pre.get)
        label = f"{t} labels/class" if t != "all" else "all labels"
        if pre[best] <= m["scratch"]:
            notes.append(f"{label}: no pretrained strategy beats scratch ({m['scratch']:.1f}); best is {best} "
                         f"({pre[best]:.1f}, {pre[best] - m['scratch']:+.1f} points)")
        else:
            beat = sorted((s for s in pre if pre[s] > m["scratch"]), key=lambda s: -pre[s])
            notes.append(f"{label}: beating scratch ({m['scratch']:.1f}): " +
                         ", ".join(f"{s} {pre[s]:.1f} ({pre[s] - m['scratch']:+.1f})" for s in beat))
        if "full" in m and "head" in m and m["full"] > m["scratch"]:
            notes.append(f"{label}: feature extraction reaches {100 * (m['head'] - m['scratch']) / (m['full'] - m['scratch']):.0f} % "
                         f"of full fine-tuning's gain over scratch")
    md = "\n".join(lines) + "\n" + ("\n".join("- " + n for n in notes) + "\n" if notes else "")
    print(md)
    open(os.path.join(root, "study.md"), "w").write(md)
    open(os.path.join(root, "study.csv"), "w").write("\n".join(csv) + "\n")
    write_svg(svg_out, res, tags, strats)
    print(f"wrote {os.path.join(root, 'study.md')}, study.csv, {svg_out}")


def write_svg(path, res, tags, strats):
    W, H, L, R, T, B = 760, 420, 60, 250, 30, 50
    xs = {t: (700 if t == "all" else int(t)) for t in tags}
    lx0, lx1 = math.log10(min(xs.values())) - 0.1, math.log10(max(xs.values())) + 0.1
    vals = [a for v in res.values() for a in v]
    y0 = max(0, math.floor(min(vals) / 10) * 10) if vals else 0
    y1 = 100

    def X(t):
        return L + (math.log10(xs[t]) - lx0) / (lx1 - lx0) * (W - L - R)

    def Y(a):
        return T + (y1 - a) / (y1 - y0) * (H - T - B)

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="18" font-size="14">MNIST target-test accuracy vs labels per class (Fashion-MNIST ResNet-18)</text>']
    for g in range(int(y0), 101, 10):
        o.append(f'<line x1="{L}" x2="{W - R}" y1="{Y(g):.1f}" y2="{Y(g):.1f}" stroke="#ddd"/>'
                 f'<text x="{L - 6}" y="{Y(g) + 4:.1f}" text-anchor="end">{g}</text>')
    for t in tags:
        o.append(f'<text x="{X(t):.1f}" y="{H - B + 18}" text-anchor="middle">{t if t != "all" else "all (~700)"}</text>')
    o.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">labels per class (log scale)</text>')
    o.append(f'<text x="16" y="{(T + H - B) / 2}" transform="rotate(-90 16 {(T + H - B) / 2})" text-anchor="middle">accuracy %</text>')
    for i, s in enumerate(strats):
        c = COLORS[i % len(COLORS)]
        pts = [(X(t), Y(statistics.mean(res[(t, s)])), res[(t, s)]) for t in tags if (t, s) in res]
        if len(pts) > 1:
            o.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (c, " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in pts)))
        for x, y, v in pts:
            if len(v) > 1:
                sd = statistics.stdev(v)
                m = statistics.mean(v)
                o.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{Y(m - sd):.1f}" y2="{Y(min(100, m + sd)):.1f}" stroke="{c}"/>')
            o.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{c}"/>')
        ly = T + 10 + 18 * i
        o.append(f'<line x1="{W - R + 12}" x2="{W - R + 32}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="2"/>'
                 f'<text x="{W - R + 38}" y="{ly + 4}">{s}</text>')
    o.append("</svg>")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(o) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
