#!/usr/bin/env bash
# Peak resident memory (issue #21 item 4), shiftlab vs the same job in Python PyTorch 1.13, side
# by side in one run, plus the growth check of a long training run:
#   1. digits LeNet DANN 64 + 64 (configs/digits/mnist_to_uci.ini), DIGITS_STEPS steps each side;
#      and one 3,000-step shiftlab run logging its resident size every 100 steps (growth check);
#   2. ResNet-18 + bottleneck DANN 64 + 64 on preloaded batches at 112 and 224 px (RESNET_STEPS);
#   3. extraction: ResNet-18 (1 band, 64 px) over LIMIT Fashion-MNIST images, taps layer3 + pooled,
#      into HDF5 (shiftlab extract vs torchvision-style forward hooks + h5py, the same batches).
# Python loads data in-process (num_workers=0): DataLoader workers are separate processes whose
# memory getrusage cannot add up; shiftlab's loader threads are inside its own figure.
# Usage: bench/memory_bench.sh [BUILD_DIR]
# Env: THREADS (2), DIGITS_STEPS (300), RESNET_STEPS (2), LIMIT (2000), SKIP_GROWTH=1
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
source "$SRC/scripts/env.sh"   # the data mirror (../shared/sources) where there is one
source "$SRC/bench/lib.sh"
BUILD="${1:-$SRC/build}"
BIN="$BUILD/shiftlab"
PY=/usr/bin/python3
WORK="$BUILD/bench-memory"
THREADS="${THREADS:-2}"
[ -x "$BIN" ] || { echo "no shiftlab binary at $BIN (build first)" >&2; exit 1; }
mkdir -p "$WORK"
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS=1
TB="$BUILD/bench-train"   # the training benchmark's data (made here when missing)
peak_of_run() { "$PY" -c "import glob, json; print('%.0f' % json.load(open(glob.glob('$1/*/summary.json')[0]))['peak_rss_mib'])"; }
row() { printf "%-52s %12s %12s %8s\n" "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN{printf "%.2f", a/b}')"; }

echo "machine: $(getconf _NPROCESSORS_ONLN) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads $THREADS"
printf "%-52s %12s %12s %8s\n" "peak resident memory (MiB)" "shiftlab" "python" "ratio"

# 1. digits
"$BIN" data prepare mnist --data.root="$TB/data" >/dev/null
"$BIN" data prepare uci-digits --data.root="$TB/data" >/dev/null
S="${DIGITS_STEPS:-300}"
rm -rf "$WORK/runs/digits"
"$BIN" train --config "$SRC/configs/digits/mnist_to_uci.ini" --method=dann --data.source.root="$TB/data" \
  --data.target.root="$TB/data" --train.steps="$S" --train.eval_every=0 --run.threads="$THREADS" \
  --run.root="$WORK/runs" --run.name=digits --run.log_level=warn >/dev/null
a=$(peak_of_run "$WORK/runs/digits")
b=$("$PY" "$SRC/bench/train_bench.py" digits "$TB/data" dann "$S" 0 "$THREADS" 0 | awk '/peak_rss_mib/{printf "%.0f", $2}')
row "1. digits LeNet DANN 64+64, $S steps" "$a" "$b"

# 2. ResNet-18 DANN on preloaded batches
bench_jpeg_folder "$BIN" "$PY" "$SRC" "$TB/jpeg"
R="${RESNET_STEPS:-2}"
for px in 112 224; do
  resnet_args "$TB/jpeg" "$px" "$px" 1 1
  common=(--method=dann "${RESNET_ARGS[@]}" --data.target.test_split="$TB/jpeg/eval.txt"
    --data.target.labelled=false --data.protocol=transductive)  # benchmarks: eval.txt is a subset of all.txt
  rm -rf "$WORK/runs/resnet$px"
  "$BIN" train "${common[@]}" --train.steps="$R" --train.eval_every=0 --run.threads="$THREADS" \
    --run.root="$WORK/runs" --run.name="resnet$px" --run.log_level=warn >/dev/null
  a=$(peak_of_run "$WORK/runs/resnet$px")
  b=$("$PY" "$SRC/bench/train_bench.py" preloaded "$TB/jpeg" dann "$R" 0 "$THREADS" 0 "$px" | awk '/peak_rss_mib/{printf "%.0f", $2}')
  row "2. ResNet-18 DANN 64+64 preloaded, ${px} px, $R steps" "$a" "$b"
done

# 3. extraction
L="${LIMIT:-2000}"
"$BIN" data prepare fashion-mnist --data.root="$TB/data" >/dev/null
rm -f "$WORK/extract.h5" "$WORK/extract_py.h5"
a=$("$BIN" extract "$WORK/extract.h5" --run.threads="$THREADS" --run.log_level=warn --model.backbone=resnet18 \
  --model.in_channels=1 --data.source.dataset=fashion-mnist --data.source.root="$TB/data" \
  --data.source.transform="resize(64), normalize(0.5, 0.5)" --data.target.dataset=fashion-mnist \
  --data.target.root="$TB/data" --data.target.transform="resize(64), normalize(0.5, 0.5)" --source_splits=test \
  --target_splits=train --limit="$L" --batch_size=64 --workers=1 --taps=layer3,pooled |
  grep -o 'peak memory [0-9]*' | awk '{print $3}')
b=$("$PY" - "$TB/data/fashion-mnist" "$WORK/extract_py.h5" "$L" "$THREADS" <<'EOF'
import resource, sys
import h5py, numpy as np, torch, torch.nn.functional as F, torchvision
root, out, limit, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
m = torchvision.models.resnet18()
m.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
m.eval()
feats = {}
m.layer3.register_forward_hook(lambda mod, i, o: feats.__setitem__("layer3", o.mean((2, 3))))
m.avgpool.register_forward_hook(lambda mod, i, o: feats.__setitem__("pooled", o.flatten(1)))
with h5py.File(out, "w") as f, torch.no_grad():
    for dom, split in (("source", "test"), ("target", "train")):
        x = np.load(f"{root}/{split}_images.npy", mmap_mode="r")[:limit]
        d = {t: f.create_dataset(f"{dom}/{split}/{t}/features", (len(x), n), "f4") for t, n in (("layer3", 256), ("pooled", 512))}
        for a in range(0, len(x), 64):
            b = torch.from_numpy(np.ascontiguousarray(x[a:a + 64])).float().div(255).unsqueeze(1)
            b = F.interpolate(b, size=64, mode="bilinear", align_corners=False, antialias=True).sub(0.5).div(0.5)
            m(b)
            for t in d:
                d[t][a:a + len(b)] = feats[t].numpy()
print("%.0f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))
EOF
)
row "3. extract ResNet-18 64 px, 2 x $L images, layer3 + pooled" "$a" "$b"

# growth: one 3,000-step digits DANN run, resident size every 100 steps
if [ "${SKIP_GROWTH:-0}" != 1 ]; then
  rm -rf "$WORK/runs/growth"
  "$BIN" train --config "$SRC/configs/digits/mnist_to_uci.ini" --method=dann --data.source.root="$TB/data" \
    --data.target.root="$TB/data" --train.log_every=100 --run.threads="$THREADS" \
    --run.root="$WORK/runs" --run.name=growth --run.log_level=warn >/dev/null
  "$PY" - "$WORK/runs/growth" <<'EOF'
import glob, json, sys
run = glob.glob(sys.argv[1] + "/*/")[0]
rows = [json.loads(l) for l in open(run + "metrics.jsonl") if '"rss_mib"' in l]
at = {r["step"]: r["rss_mib"] for r in rows}
steps = sorted(at)
first = at.get(100, at[steps[0]])
print("growth: digits DANN, resident %.0f MiB at step %d, %.0f MiB at step %d (%+.1f MiB), max %.0f MiB, peak %.0f MiB"
      % (first, 100 if 100 in at else steps[0], at[steps[-1]], steps[-1], at[steps[-1]] - first, max(at.values()),
         json.load(open(run + "summary.json"))["peak_rss_mib"]))
EOF
fi
