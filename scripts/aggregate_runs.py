#!/usr/bin/env python3
"""Aggregates shiftlab run directories <root>/<task>/<method>/<seedN>/<run>/summary.json into a
Markdown table: target-test accuracy mean ± std over seeds, selected by source-val (honest)
beside the oracle (best target-test over training) and the last checkpoint."""
import glob
import json
import os
import statistics
import sys


def fmt(xs):
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return f"{xs[0]:.1f}"
    return f"{statistics.mean(xs):.1f} ± {statistics.stdev(xs):.1f}"


def main(root):
    rows = {}
    for path in sorted(glob.glob(os.path.join(root, "*", "*", "*", "*", "summary.json"))):
        parts = os.path.relpath(path, root).split(os.sep)
        task, method = parts[0], parts[1]
        s = json.load(open(path))
        if s.get("status") != "completed":
            continue
        r = rows.setdefault((task, method), {"sel": [], "oracle": [], "last": [], "n": 0})
        r["sel"].append(s["selected"]["target_test_acc"])
        r["oracle"].append(s["oracle"]["target_test_acc"])
        r["last"].append(s["last"]["target_test_acc"])
        r["n"] += 1
    tasks = sorted({t for t, _ in rows})
    for task in tasks:
        print(f"\n{task} (target-test accuracy %, mean ± std over seeds)\n")
        print("| method | selected by source-val | oracle | last | seeds |")
        print("|---|---|---|---|---|")
        base = rows.get((task, "source_only"), {}).get("sel")
        for (t, m), r in sorted(rows.items(), key=lambda kv: (kv[0][1] != "source_only", kv[0][1])):
            if t != task:
                continue
            print(f"| {m} | {fmt(r['sel'])} | {fmt(r['oracle'])} | {fmt(r['last'])} | {r['n']} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/digits_table")
