#!/usr/bin/env python3
"""Helpers of scripts/gpu_check.sh (standard library only): read shiftlab run directories and
merge the per-section files into the one JSON the check leaves in $OUT.

  gpu_check_report.py run RUN_PARENT                 summary of the one run under RUN_PARENT/<stamp-id>/
  gpu_check_report.py rate RUN_PARENT SKIP_ROWS      images/s over metrics.jsonl's training rows after SKIP_ROWS
  gpu_check_report.py same-losses RUN_A RUN_B        whether the loss columns of two runs are identical
  gpu_check_report.py facts DIR                      machine facts from the files gpu_check.sh wrote in DIR
  gpu_check_report.py merge OUT                      OUT/sections/* -> OUT/gpu_check.json (+ a summary on stdout)
Every command prints one JSON object (merge: the summary table).
"""
import glob
import json
import os
import re
import sys
import time


def run_dir(parent):
    dirs = sorted(d for d in glob.glob(os.path.join(parent, "*")) if os.path.isfile(os.path.join(d, "config.resolved.ini")))
    if not dirs:
        raise SystemExit("no run directory under %s" % parent)
    return dirs[-1]


def metrics(d):
    rows = []
    p = os.path.join(d, "metrics.jsonl")
    if os.path.exists(p):
        with open(p) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    return rows


def cmd_run(parent):
    d = run_dir(parent)
    s = json.load(open(os.path.join(d, "summary.json")))
    last = s.get("last") or {}
    sel = s.get("selected") or {}
    train_rows = [r for r in metrics(d) if "images_per_s" in r]
    return {"run_dir": d, "status": s.get("status"), "steps": s.get("steps"),
            "target_test_acc": last.get("target_test_acc"), "source_val_acc": last.get("source_val_acc"),
            "selected_target_test_acc": sel.get("target_test_acc"), "train_seconds": s.get("train_seconds"),
            "final_loss": train_rows[-1].get("loss") if train_rows else None}


def cmd_rate(parent, skip):
    d = run_dir(parent)
    rows = [r for r in metrics(d) if "images_per_s" in r]
    used = rows[int(skip):]
    if not used:
        raise SystemExit("run %s has %d training rows, none after the first %s" % (d, len(rows), skip))
    # each row covers the steps since the previous one; images/s weighted by time
    steps = [r["step"] - (rows[i + int(skip) - 1]["step"] if i + int(skip) > 0 else 0) for i, r in enumerate(used)]
    t = sum(n / r["images_per_s"] for n, r in zip(steps, used))
    return {"run_dir": d, "rows": len(rows), "rows_used": len(used), "steps_used": sum(steps),
            "images_per_s": sum(steps) / t, "row_images_per_s": [r["images_per_s"] for r in rows],
            "loss_finite": all(isinstance(r.get("loss"), (int, float)) and r["loss"] == r["loss"] for r in rows)}


def cmd_same_losses(a, b):
    ra = [r for r in metrics(run_dir(a)) if "images_per_s" in r]
    rb = [r for r in metrics(run_dir(b)) if "images_per_s" in r]
    keys = sorted(k for k in (ra[0].keys() if ra else []) if k not in ("images_per_s", "step", "phase", "lr"))
    diffs = []
    for x, y in zip(ra, rb):
        for k in keys:
            if x.get(k) != y.get(k):
                diffs.append({"step": x["step"], "key": k, "a": x.get(k), "b": y.get(k)})
    return {"rows_a": len(ra), "rows_b": len(rb), "columns": keys, "identical": len(ra) == len(rb) and not diffs and bool(ra),
            "first_differences": diffs[:5], "losses_a": [r.get("loss") for r in ra], "losses_b": [r.get("loss") for r in rb]}


def read(p, default=""):
    try:
        with open(p, errors="replace") as f:
            return f.read().strip()
    except OSError:
        return default


def cmd_facts(d):
    out = {}
    smi = read(os.path.join(d, "nvidia-smi.csv"))
    if smi:
        f = [x.strip() for x in smi.splitlines()[0].split(",")]
        out["nvidia_smi"] = dict(zip(["gpu_name", "driver_version", "memory_total", "compute_cap"], f))
    else:
        out["nvidia_smi"] = read(os.path.join(d, "nvidia-smi.err"), "not available") or "not available"
    out["nvidia_smi_header"] = read(os.path.join(d, "nvidia-smi.txt"))[:2000] or None
    try:
        out["python_torch"] = json.loads(read(os.path.join(d, "torch.json"), "{}"))
    except ValueError:
        out["python_torch"] = read(os.path.join(d, "torch.json"))
    out["shiftlab_version"] = dict(
        line.split(" ", 1) for line in read(os.path.join(d, "shiftlab-version.txt")).splitlines() if " " in line)
    out["glibc"] = read(os.path.join(d, "glibc.txt"))
    out["nvcc"] = read(os.path.join(d, "nvcc.txt")).splitlines()[-1:] or None
    out["cpu"] = read(os.path.join(d, "cpu.txt"))
    nf = read(os.path.join(d, "ldd-not-found.txt"))
    out["libraries_not_found"] = nf.splitlines() if nf else []
    outside = read(os.path.join(d, "ldd-outside.txt"))
    out["libraries_from_elsewhere"] = outside.splitlines() if outside else []
    out["libstdcxx_compat_used"] = os.path.exists(os.path.join(d, "compat-used"))
    try:
        out["bundle"] = json.load(open(os.path.join(d, "bundle-manifest.json")))
    except (OSError, ValueError):
        out["bundle"] = None
    return out


def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def cmd_merge(out_dir):
    sec_dir = os.path.join(out_dir, "sections")
    sections = {}
    order = read(os.path.join(sec_dir, "ORDER")).split()
    for name in order:
        st = {}
        try:
            st = json.load(open(os.path.join(sec_dir, name + ".status.json")))
        except (OSError, ValueError):
            st = {"status": "not run"}
        try:
            st["figures"] = json.load(open(os.path.join(sec_dir, name + ".json")))
        except (OSError, ValueError):
            st["figures"] = None
        sections[name] = st
    meta = {}
    try:
        meta = json.load(open(os.path.join(sec_dir, "meta.json")))
    except (OSError, ValueError):
        pass
    F = lambda n: (sections.get(n) or {}).get("figures") or {}
    cpp = get(F("step_cpp"), "images_per_s")
    e2e = get(F("e2e_jpeg"), "images_per_s")
    summary = {
        "sections": {n: s.get("status") for n, s in sections.items()},
        "agree_all_within_tolerance": get(F("agree"), "all_within_tolerance"),
        "resnet50_bf16_forward_rel_l2": get(F("agree"), "resnet50", "cuda_bf16_autocast", "forward", "rel_l2"),
        "resnet50_fp32_forward_rel_l2": get(F("agree"), "resnet50", "cuda_fp32_tf32_default", "forward", "rel_l2"),
        "digits_target_acc_device": get(F("digits"), "device_run", "target_test_acc"),
        "digits_target_acc_cpu": get(F("digits"), "cpu_run", "target_test_acc"),
        "digits_acc_difference": get(F("digits"), "difference"),
        "digits_seed_difference_cpu": get(F("digits"), "seed_difference_cpu"),
        "digits_close": get(F("digits"), "close"),
        "cpp_step_images_per_s": cpp,
        "cpp_step_ms": get(F("step_cpp"), "step_ms"),
        "cpp_peak_allocated_mib": get(F("step_cpp"), "peak_allocated_mib"),
        "python_eager_images_per_s": get(F("py_eager"), "images_per_s"),
        "python_compile_images_per_s": get(F("py_compile"), "images_per_s"),
        "python_compile_first_step_s": get(F("py_compile"), "first_step_seconds"),
        "cpp_over_python_eager": ratio(cpp, get(F("py_eager"), "images_per_s")),
        "cpp_over_python_compile": ratio(cpp, get(F("py_compile"), "images_per_s")),
        "e2e_jpeg_images_per_s": e2e,
        "e2e_over_preloaded": ratio(e2e, cpp),
        "dist_all_ok": get(F("dist"), "all_ok"),
        "dist_backend": get(F("dist"), "backend"),
        "deterministic_identical": get(F("determinism"), "identical"),
    }
    doc = {"what": "shiftlab GPU check (scripts/gpu_check.sh)", "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           **meta, "summary": summary, "sections": sections}
    with open(os.path.join(out_dir, "gpu_check.json"), "w") as f:
        json.dump(doc, f, indent=1)
    lines = ["%-14s %-8s %6s  %s" % ("section", "status", "s", "note")]
    for n, s in sections.items():
        note = s.get("error") or s.get("reason") or ""
        lines.append("%-14s %-8s %6.1f  %s" % (n, s.get("status"), s.get("seconds") or 0, note[:110]))
    lines.append("")
    for k, v in summary.items():
        if k != "sections":
            lines.append("%-32s %s" % (k, ("%.6g" % v) if isinstance(v, float) else v))
    return "\n".join(lines)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "merge":
        print(cmd_merge(*args))
        return
    fn = {"run": cmd_run, "rate": cmd_rate, "same-losses": cmd_same_losses, "facts": cmd_facts}[cmd]
    print(json.dumps(fn(*args)))


if __name__ == "__main__":
    main()
