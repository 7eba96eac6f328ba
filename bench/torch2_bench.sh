#!/usr/bin/env bash
# shiftlab and Python PyTorch, old and current, side by side in one run (issue #19 §3):
#   shiftlab on Debian's libtorch 1.13 (BUILD, default build/) and on PyPI's libtorch 2.11
#   (PIP_BUILD, default build-pip/; scripts/build.sh --torch=pip shiftlab_bin), Python PyTorch 1.13
#   (Debian's python3-torch) and 2.11 (the venv of scripts/install_deps.sh --torch=pip), eager and
#   torch.compile (inductor on CPU; compiled during the warmup steps, not timed).
# Rows: 1. digits LeNet (source-only, DANN) with DataLoaders, as bench/train_bench.sh digits;
#       3. ResNet-18 + bottleneck on preloaded batches at PX px (compute only: the kernels).
# Usage: bench/torch2_bench.sh [BUILD] [PIP_BUILD]
# Env: THREADS (2), WORKERS (2), DIGITS_STEPS (200), DIGITS_WARMUP (30), RSTEPS (4), RWARMUP (3),
#      PX (112), METHODS (source_only dann), SKIP_RESNET=1
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
source "$SRC/scripts/env.sh"   # the data mirror (../shared/sources) where there is one
source "$SRC/bench/lib.sh"
BUILD="${1:-$SRC/build}"
PIP_BUILD="${2:-$SRC/build-pip}"
PY13=/usr/bin/python3
PY211=$(cat "${SHIFTLAB_CACHE:-$HOME/.cache/shiftlab}/torch-python" 2>/dev/null || true)
THREADS="${THREADS:-2}"
WORKERS="${WORKERS:-2}"
METHODS="${METHODS:-source_only dann}"
PX="${PX:-112}"
WORK="$BUILD/bench-torch2"
TB="$BUILD/bench-train"
for b in "$BUILD/shiftlab" "$PIP_BUILD/shiftlab"; do
  [ -x "$b" ] || { echo "no shiftlab binary at $b (scripts/build.sh [--torch=pip] shiftlab_bin)" >&2; exit 1; }
done
[ -x "$PY211" ] || { echo "no torch 2.11 python (bash scripts/install_deps.sh --torch=pip)" >&2; exit 1; }
mkdir -p "$WORK"
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS="$THREADS"

rate_of() {  # RUN_DIR WARMUP IMAGES_PER_STEP
  "$PY13" - "$@" <<'EOF'
import glob, json, sys
run, warm, ips = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [json.loads(l) for l in open(glob.glob(run + "/*/metrics.jsonl")[0]) if '"images_per_s"' in l]
rows = [r for r in rows if r["step"] > warm]
t = sum(warm * ips / r["images_per_s"] for r in rows)
print("%.1f" % (len(rows) * warm * ips / t))
EOF
}
shiftlab_rate() {  # BIN NAME WARMUP STEPS IMAGES_PER_STEP args...
  local bin="$1" name="$2" warm="$3" steps="$4" ips="$5"
  shift 5
  rm -rf "$WORK/runs/$name"
  "$bin" train "$@" --train.steps=$((warm + steps)) --train.log_every="$warm" --train.eval_every=0 \
    --run.threads="$THREADS" --run.root="$WORK/runs" --run.name="$name" --run.log_level=warn >/dev/null
  rate_of "$WORK/runs/$name" "$warm" "$ips"
}
py_rate() {  # PYTHON COMPILE args... -> images/s or "failed"
  local py="$1" comp="$2"
  shift 2
  TORCH_COMPILE="$comp" "$py" "$SRC/bench/train_bench.py" "$@" 2>"$WORK/py_err.txt" | awk '/images_per_s/{print $2}' |
    grep . || echo "failed($(tail -n 1 "$WORK/py_err.txt" | cut -c1-60))"
}
row() {  # LABEL a b c d e : images/s; ratios against Python 2.11 eager
  printf "%-36s %10s %10s %10s %10s %10s   %s\n" "$1" "$2" "$3" "$4" "$5" "$6" \
    "$(awk -v a="$2" -v b="$3" -v d="$5" 'BEGIN{ if (d > 0) printf "shiftlab 1.13 / py 2.11: %.2fx, shiftlab 2.11 / py 2.11: %.2fx", a/d, b/d}')"
}

echo "machine: $(getconf _NPROCESSORS_ONLN) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads $THREADS"
echo "$("$BUILD/shiftlab" --version | head -n 2 | tr '\n' ' ')| $("$PIP_BUILD/shiftlab" --version | head -n 2 | tr '\n' ' ')"
echo "python: $("$PY13" -c 'import torch; print(torch.__version__)') and $("$PY211" -c 'import torch; print(torch.__version__)')"
printf "%-36s %10s %10s %10s %10s %10s\n" "images/s" "sl 1.13" "sl 2.11" "py 1.13" "py 2.11" "py 2.11 cmp"

"$BUILD/shiftlab" data prepare mnist --data.root="$TB/data" >/dev/null
"$BUILD/shiftlab" data prepare uci-digits --data.root="$TB/data" >/dev/null
W="${DIGITS_WARMUP:-30}" S="${DIGITS_STEPS:-200}"
for m in $METHODS; do
  ips=128; [ "$m" = source_only ] && ips=64
  d=(--config "$SRC/configs/digits/mnist_to_uci.ini" --method="$m" --data.source.root="$TB/data"
     --data.target.root="$TB/data" --data.source.workers="$WORKERS" --data.target.workers="$WORKERS")
  a=$(shiftlab_rate "$BUILD/shiftlab" "d13_$m" "$W" "$S" "$ips" "${d[@]}")
  b=$(shiftlab_rate "$PIP_BUILD/shiftlab" "d211_$m" "$W" "$S" "$ips" "${d[@]}")
  c=$(py_rate "$PY13" 0 digits "$TB/data" "$m" "$S" "$W" "$THREADS" "$WORKERS")
  e=$(py_rate "$PY211" 0 digits "$TB/data" "$m" "$S" "$W" "$THREADS" "$WORKERS")
  f=$(py_rate "$PY211" 1 digits "$TB/data" "$m" "$S" "$W" "$THREADS" "$WORKERS")
  row "1. digits LeNet $m" "$a" "$b" "$c" "$e" "$f"
done

if [ "${SKIP_RESNET:-0}" != 1 ]; then
  [ -f "$TB/jpeg/.done" ] || { echo "run bench/train_bench.sh $BUILD folder first (it makes $TB/jpeg)" >&2; exit 1; }
  W="${RWARMUP:-3}" S="${RSTEPS:-4}"
  for m in $METHODS; do
    ips=128; [ "$m" = source_only ] && ips=64
    resnet_args "$TB/jpeg" "$PX" "$PX" 1 1
    r=(--method="$m" "${RESNET_ARGS[@]}" --data.target.test_fraction=0.03 --eval.batch_size=64)
    a=$(shiftlab_rate "$BUILD/shiftlab" "r13_$m" "$W" "$S" "$ips" "${r[@]}")
    b=$(shiftlab_rate "$PIP_BUILD/shiftlab" "r211_$m" "$W" "$S" "$ips" "${r[@]}")
    c=$(py_rate "$PY13" 0 preloaded "$TB/jpeg" "$m" "$S" "$W" "$THREADS" 0 "$PX")
    e=$(py_rate "$PY211" 0 preloaded "$TB/jpeg" "$m" "$S" "$W" "$THREADS" 0 "$PX")
    f=$(py_rate "$PY211" 1 preloaded "$TB/jpeg" "$m" "$S" "$W" "$THREADS" 0 "$PX")
    row "3. preloaded ResNet-18 ${PX} px $m" "$a" "$b" "$c" "$e" "$f"
  done
fi
