#!/usr/bin/env bash
# Extraction throughput vs the forward pass alone (issue #9 item 4, goal >= 0.95x): the same
# model, data, loader and batches through `shiftlab extract`, once with --forward_only (no file)
# and once writing the HDF5 cache (float32, then float16). ResNet-18 (random weights, 1 band) at
# 64 px on Fashion-MNIST: LIMIT test images as source + LIMIT train images as target.
# Usage: bench/extract_bench.sh [BUILD_DIR]   env: LIMIT (1000), THREADS (1), REPS (2), TAPS (layer3,pooled)
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
source "$SRC/scripts/env.sh"   # the data mirror (../shared/sources) where there is one
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
rate() { grep -o '[0-9.]* images/s' | tail -1 | cut -d' ' -f1; }
# wall-clock rates are noisy on a shared machine: also count CPU seconds (user + sys, all threads)
cpu_of() { awk '/^cpu /{print $2 + $3}' "$WORK/cpu.txt"; }
run() {  # run OUT [extra...] -> prints "images_per_s cpu_seconds"
  local out="$1"; shift
  local r
  r=$( { TIMEFORMAT='cpu %U %S'; time "$BIN" extract "$out" "${common[@]}" "$@"; } 2>"$WORK/cpu.txt" | tee -a "$WORK/lines.txt" | rate)
  echo "$r $(cpu_of)"
}
max() { awk -v a="$1" -v b="$2" 'BEGIN{print (a > b) ? a : b}'; }
best_fwd=0; best_f32=0; best_f16=0; cpu_fwd=0; cpu_f32=0; cpu_f16=0
add() { awk -v a="$1" -v b="$2" 'BEGIN{print a + b}'; }
rm -f "$WORK/lines.txt"
for r in $(seq "$REPS"); do
  read -r f cf < <(run "$WORK/unused.h5" --forward_only=true)
  rm -f "$WORK/f32.h5" "$WORK/f16.h5"
  read -r a ca < <(run "$WORK/f32.h5" --dtype=float32)
  read -r b cb < <(run "$WORK/f16.h5" --dtype=float16)
  echo "rep $r: forward only $f images/s (cpu $cf s), extract float32 $a images/s (cpu $ca s), float16 $b images/s (cpu $cb s)"
  best_fwd=$(max "$best_fwd" "$f"); best_f32=$(max "$best_f32" "$a"); best_f16=$(max "$best_f16" "$b")
  cpu_fwd=$(add "$cpu_fwd" "$cf"); cpu_f32=$(add "$cpu_f32" "$ca"); cpu_f16=$(add "$cpu_f16" "$cb")
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }
echo "$(getconf _NPROCESSORS_ONLN) cores, $THREADS thread(s), $((2 * LIMIT)) images, taps $TAPS, file $(du -h "$WORK/f32.h5" | cut -f1) (float32)"
echo "wall (best of $REPS): forward only ${best_fwd} images/s; extract float32 ${best_f32} images/s (ratio $(ratio "$best_f32" "$best_fwd")), float16 ${best_f16} images/s (ratio $(ratio "$best_f16" "$best_fwd"))"
echo "cpu (sum of $REPS, whole process incl. start-up): forward only ${cpu_fwd} s; float32 ${cpu_f32} s (ratio $(ratio "$cpu_fwd" "$cpu_f32")), float16 ${cpu_f16} s (ratio $(ratio "$cpu_fwd" "$cpu_f16"))"
# the writer's own time (conversion + HDF5 writes + flushes) as a share of the extraction loop
awk '/^wrote/{match($0, /rows in [0-9.]+ s/); t=substr($0, RSTART+8, RLENGTH-10); match($0, /writing [0-9.]+ s/); w=substr($0, RSTART+8, RLENGTH-10); T+=t; W+=w} END{if (T > 0) printf "writing: %.2f s of %.2f s extraction loops (%.2f %%) -> forward-limited ratio %.3f\n", W, T, 100*W/T, 1-W/T}' "$WORK/lines.txt"
