#!/usr/bin/env bash
# Extraction throughput vs the forward pass alone (issue #9 item 4, goal >= 0.95x): the same
# model, data, loader and batches through `shiftlab extract`, once with --forward_only (no file)
# and once writing the HDF5 cache (float32, then float16). ResNet-18 (random weights, 1 band) at
# 64 px on Fashion-MNIST: LIMIT test images as source + LIMIT train images as target.
# Usage: bench/extract_bench.sh [BUILD_DIR]   env: LIMIT (1000), THREADS (1), REPS (2), TAPS (layer3,pooled)
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$SRC/build}"
BIN="$BUILD/shiftlab"
WORK="$BUILD/bench-extract"
LIMIT="${LIMIT:-1000}"
THREADS="${THREADS:-1}"
REPS="${REPS:-2}"
TAPS="${TAPS:-layer3,pooled}"
[ -x "$BIN" ] || { echo "no shiftlab binary at $BIN (build first)" >&2; exit 1; }
mkdir -p "$WORK"
"$BIN" data prepare fashion-mnist --data.root="$WORK/data" >/dev/null
common=(--run.threads="$THREADS" --run.log_level=warn --model.backbone=resnet18 --model.in_channels=1
  --data.source.dataset=fashion-mnist --data.source.root="$WORK/data" --data.source.transform="resize(64), normalize(0.5, 0.5)"
  --data.target.dataset=fashion-mnist --data.target.root="$WORK/data" --data.target.transform="resize(64), normalize(0.5, 0.5)"
  --source_splits=test --target_splits=train --limit="$LIMIT" --batch_size=64 --workers=1 --taps="$TAPS")
rate() { sed -n 's/.*(\{0,1\}\([0-9.]*\) images\/s.*/\1/p' | tail -1; }
best_fwd=0; best_f32=0; best_f16=0
max() { awk -v a="$1" -v b="$2" 'BEGIN{print (a > b) ? a : b}'; }
for r in $(seq "$REPS"); do
  f=$("$BIN" extract "$WORK/unused.h5" "${common[@]}" --forward_only=true | rate)
  rm -f "$WORK/f32.h5" "$WORK/f16.h5"
  a=$("$BIN" extract "$WORK/f32.h5" "${common[@]}" --dtype=float32 | rate)
  b=$("$BIN" extract "$WORK/f16.h5" "${common[@]}" --dtype=float16 | rate)
  echo "rep $r: forward only $f images/s, extract float32 $a images/s, float16 $b images/s"
  best_fwd=$(max "$best_fwd" "$f"); best_f32=$(max "$best_f32" "$a"); best_f16=$(max "$best_f16" "$b")
done
echo "$(nproc) cores, $THREADS thread(s), $((2 * LIMIT)) images, taps $TAPS, file $(du -h "$WORK/f32.h5" | cut -f1) (float32)"
echo "forward only ${best_fwd} images/s; extract float32 ${best_f32} images/s (ratio $(awk -v a="$best_f32" -v b="$best_fwd" 'BEGIN{printf "%.3f", a/b}')), float16 ${best_f16} images/s (ratio $(awk -v a="$best_f16" -v b="$best_fwd" 'BEGIN{printf "%.3f", a/b}'))"
