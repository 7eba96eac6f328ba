#!/usr/bin/python3
"""ctest GpuCheck.Report: the parts of the prepared GPU check that run without a GPU or the pip
build (see scripts/gpu_check.sh; the whole check's CPU dry run is
`bash scripts/gpu_bundle.sh && OUT=/tmp/gpucheck bash scripts/gpu_check.sh --dry-run`).

  * bench/gpu_check_report.py `rate`: images/s over a run's training rows after the warm-up rows,
    weighted by time, against the formula (sum of images) / (sum of per-row seconds);
  * `same-losses`: identical runs are identical, a one-ulp difference in one column is found;
  * `run`: the accuracies of a summary.json;
  * `merge`: per-section status and figures land in gpu_check.json, with the derived ratio;
  * bash -n on scripts/gpu_check.sh and scripts/gpu_bundle.sh.
Usage: gpu_check_report_test.py SOURCE_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

SRC = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
TOOL = os.path.join(SRC, "bench", "gpu_check_report.py")


def tool(*args):
    return subprocess.run([sys.executable, TOOL, *args], check=True, capture_output=True, text=True).stdout


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def dump(obj, path):
    write(path, json.dumps(obj))


def make_run(parent, rows, summary=None):
    d = os.path.join(parent, "20260101-000000-abcdef")
    os.makedirs(d)
    write(os.path.join(d, "config.resolved.ini"), "[run]\n")
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    dump(summary or {"status": "completed", "steps": rows[-1]["step"] if rows else 0,
                     "last": {"target_test_acc": 71.5, "source_val_acc": 98.0},
                     "selected": {"target_test_acc": 70.0}, "train_seconds": 12.0},
         os.path.join(d, "summary.json"))
    return d


class Report(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.t = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_rate_is_time_weighted_after_the_warmup_rows(self):
        # rows every 10 steps, then a last one after 5 (steps = 25): 128 images a step
        rows = [{"step": 10, "loss": 1.0, "images_per_s": 100.0}, {"step": 20, "loss": 0.9, "images_per_s": 400.0},
                {"step": 25, "loss": 0.8, "images_per_s": 200.0},
                {"step": 25, "source_val_acc": 50.0}]  # an evaluation row: not a training row
        make_run(os.path.join(self.t, "r"), rows)
        r = json.loads(tool("rate", os.path.join(self.t, "r"), "1"))
        images = 128 * (10 + 5)
        seconds = 128 * 10 / 400.0 + 128 * 5 / 200.0
        self.assertAlmostEqual(r["images_per_s"], images / seconds, places=9)
        self.assertEqual(r["rows_used"], 2)
        self.assertEqual(r["steps_used"], 15)
        self.assertTrue(r["loss_finite"])
        r0 = json.loads(tool("rate", os.path.join(self.t, "r"), "0"))
        self.assertAlmostEqual(r0["images_per_s"], 25 / (10 / 100.0 + 10 / 400.0 + 5 / 200.0), places=9)

    def test_same_losses(self):
        rows = [{"step": 10, "loss": 0.123456789012345, "ce": 0.1, "dann": 0.02, "lr": 0.01, "images_per_s": 5.0},
                {"step": 20, "loss": 0.1, "ce": 0.09, "dann": 0.01, "lr": 0.01, "images_per_s": 6.0}]
        make_run(os.path.join(self.t, "a"), rows)
        other = [dict(r, images_per_s=r["images_per_s"] * 2) for r in rows]  # wall clock may differ
        make_run(os.path.join(self.t, "b"), other)
        r = json.loads(tool("same-losses", os.path.join(self.t, "a"), os.path.join(self.t, "b")))
        self.assertTrue(r["identical"])
        self.assertEqual(r["columns"], ["ce", "dann", "loss"])
        bumped = [dict(rows[0]), dict(rows[1], dann=0.010000000000000002)]  # the next double after 0.01
        make_run(os.path.join(self.t, "c"), bumped)
        r = json.loads(tool("same-losses", os.path.join(self.t, "a"), os.path.join(self.t, "c")))
        self.assertFalse(r["identical"])
        self.assertEqual(r["first_differences"][0]["key"], "dann")
        self.assertEqual(r["first_differences"][0]["step"], 20)

    def test_run_summary(self):
        make_run(os.path.join(self.t, "r"), [{"step": 10, "loss": 0.5, "images_per_s": 1.0}])
        r = json.loads(tool("run", os.path.join(self.t, "r")))
        self.assertEqual(r["target_test_acc"], 71.5)
        self.assertEqual(r["selected_target_test_acc"], 70.0)
        self.assertEqual(r["final_loss"], 0.5)

    def test_merge(self):
        s = os.path.join(self.t, "out", "sections")
        os.makedirs(s)
        write(os.path.join(s, "ORDER"), "step_cpp e2e_jpeg digits py_compile\n")
        dump({"status": "ok", "seconds": 3.0, "rc": 0}, os.path.join(s, "step_cpp.status.json"))
        dump({"images_per_s": 2000.0, "step_ms": 64.0}, os.path.join(s, "step_cpp.json"))
        dump({"status": "ok", "seconds": 9.0, "rc": 0}, os.path.join(s, "e2e_jpeg.status.json"))
        dump({"images_per_s": 1500.0}, os.path.join(s, "e2e_jpeg.json"))
        dump({"status": "failed", "seconds": 1.0, "rc": 1, "error": "boom"}, os.path.join(s, "digits.status.json"))
        dump({"mode": "gpu"}, os.path.join(s, "meta.json"))
        text = tool("merge", os.path.join(self.t, "out"))
        with open(os.path.join(self.t, "out", "gpu_check.json")) as f:
            doc = json.load(f)
        self.assertEqual(doc["mode"], "gpu")
        self.assertEqual(doc["summary"]["sections"],
                         {"step_cpp": "ok", "e2e_jpeg": "ok", "digits": "failed", "py_compile": "not run"})
        self.assertAlmostEqual(doc["summary"]["e2e_over_preloaded"], 0.75)
        self.assertEqual(doc["sections"]["digits"]["error"], "boom")
        self.assertIsNone(doc["sections"]["digits"]["figures"])
        self.assertIn("boom", text)

    def test_scripts_parse(self):
        for s in ("gpu_check.sh", "gpu_bundle.sh"):
            subprocess.run(["bash", "-n", os.path.join(SRC, "scripts", s)], check=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
