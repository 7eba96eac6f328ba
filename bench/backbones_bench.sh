#!/usr/bin/env bash
# Backbone forward throughput, shiftlab vs Python PyTorch 1.13 / torchvision 0.14, measured in the
# same run, one backbone at a time (C++ then Python, so both see the same machine load): each at its
# native resolution (shiftlab list backbones), batch 8, eval mode, no gradients, 2 intra-op threads,
# ITERS timed batches after WARMUP. Prints both lines and a table: images/s from the best batch
# (wall clock) and images per CPU-second from the median batch's process CPU time (steadier on a
# shared machine), each with the shiftlab / PyTorch ratio.
# Usage: bench/backbones_bench.sh [BUILD_DIR] [NAME...]
#   env: BATCH (8), THREADS (2), ITERS (5), WARMUP (1), ROUNDS (1: best of ROUNDS alternating runs per side)
#   builds BUILD_DIR's backbone_bench target (configured with -DSHIFTLAB_BENCH=ON) when missing.
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
source "$SRC/scripts/env.sh"   # the data mirror (../shared/sources) where there is one
BUILD="${1:-$SRC/build}"
shift || true
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(efficientnet_b0 efficientnet_b1 efficientnet_b2 efficientnet_b3 efficientnet_b4
  convnext_tiny densenet121 mobilenet_v3_small mobilenet_v3_large resnet50)
BATCH="${BATCH:-8}"; THREADS="${THREADS:-2}"; ITERS="${ITERS:-5}"; WARMUP="${WARMUP:-1}"
PY=/usr/bin/python3
BIN="$BUILD/backbone_bench"
if [ ! -x "$BIN" ]; then
  cmake -S "$SRC" -B "$BUILD" -DSHIFTLAB_BENCH=ON >/dev/null
  cmake --build "$BUILD" --target backbone_bench >/dev/null
fi
export OMP_NUM_THREADS="$THREADS"
ROUNDS="${ROUNDS:-1}"
echo "$(getconf _NPROCESSORS_ONLN) cores, load $(cut -d' ' -f1-3 /proc/loadavg); batch $BATCH, $THREADS threads, $ITERS timed batches after $WARMUP warm-up, best of $ROUNDS round(s) (C++ and Python alternating); $($PY -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)')"
field() { awk -v k="$2" '{for (i = 1; i < NF; ++i) if ($i == k) print $(i + 1)}' <<<"$1"; }
max() { awk -v a="$1" -v b="$2" 'BEGIN{print (a + 0 > b + 0) ? a : b}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
ROWS=()
for n in "${NAMES[@]}"; do
  a=0; b=0; ac=0; bc=0
  for r in $(seq "$ROUNDS"); do
    c=$("$BIN" --batch="$BATCH" --threads="$THREADS" --iters="$ITERS" --warmup="$WARMUP" "$n")
    echo "  shiftlab: $c"
    size=$(field "$c" size)
    p=$("$PY" "$SRC/bench/backbones_bench.py" "$n" "$size" "$BATCH" "$THREADS" "$ITERS" "$WARMUP" 2>/dev/null)
    echo "  python:   $p"
    a=$(max "$a" "$(field "$c" images_per_s)"); ac=$(max "$ac" "$(field "$c" images_per_cpu_s)")
    b=$(max "$b" "$(field "$p" images_per_s)"); bc=$(max "$bc" "$(field "$p" images_per_cpu_s)")
  done
  ROWS+=("| $n | $(field "$c" params) / $(field "$p" params) | $size px | $a | $b | $(ratio "$a" "$b")x | $ac | $bc | $(ratio "$ac" "$bc")x |")
done
echo
echo "| backbone | params (shiftlab / torchvision) | input | shiftlab images/s | PyTorch images/s | ratio | shiftlab images/CPU-s | PyTorch images/CPU-s | ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
