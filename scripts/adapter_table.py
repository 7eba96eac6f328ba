#!/usr/bin/env python3
"""Markdown table of the adapter experiments: <root>/<task>/<variant>/seed<N>/<run>/ run
directories -> target-test accuracy (selected by source-val; mean ± std over seeds) beside the
trainable parameter count that the run's log.txt reports ("trainable parameters: model T of N")."""
import glob
import json
import os
import re
import statistics
import sys

ORDER = ["head", "residual", "bottleneck", "lora", "full"]


def fmt(xs):
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return f"{xs[0]:.1f} (1 seed)"
    return f"{statistics.mean(xs):.1f} ± {statistics.stdev(xs):.1f}"


def main(root):
    rows = {}
    for path in sorted(glob.glob(os.path.join(root, "*", "*", "seed*", "*", "summary.json"))):
        run = os.path.dirname(path)
        task, variant = os.path.relpath(path, root).split(os.sep)[:2]
        s = json.load(open(path))
        if s.get("status") != "completed":
            continue
        log = open(os.path.join(run, "log.txt")).read()
        m = re.findall(r"trainable parameters: model (\d+) of (\d+).*?method (\d+)", log)
        r = rows.setdefault((task, variant), {"sel": [], "oracle": [], "train": None, "total": None, "method": None,
                                              "seconds": []})
        r["sel"].append(s["selected"]["target_test_acc"])
        r["oracle"].append(s["oracle"]["target_test_acc"])
        r["seconds"].append(s.get("train_seconds", 0))
        if m:
            r["train"], r["total"], r["method"] = (int(v) for v in m[-1])
    for task in sorted({t for t, _ in rows}):
        print(f"\n{task}: target-test accuracy % (selected by source-val; mean ± std over seeds)\n")
        print("| variant | trainable (model) | % of model | + discriminator | target acc | oracle | s/run |")
        print("|---|---:|---:|---:|---|---|---:|")
        keys = sorted((v for t, v in rows if t == task), key=lambda v: (ORDER.index(v) if v in ORDER else 99, v))
        for v in keys:
            r = rows[(task, v)]
            pct = 100.0 * r["train"] / r["total"] if r["train"] is not None else float("nan")
            print(f"| {v} | {r['train']:,} | {pct:.2f} | {r['method']:,} | {fmt(r['sel'])} | {fmt(r['oracle'])} | "
                  f"{statistics.mean(r['seconds']):.0f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/adapters")
