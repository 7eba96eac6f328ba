#!/usr/bin/env bash
# Training benchmarks, shiftlab vs Python PyTorch 1.13 (Debian's python3-torch, the same libtorch
# build), measured side by side in one run (issue 9, items 1-3):
#   1. digits: LeNet DANN MNIST -> UCI digits, 64 + 64 images a step, loaders with WORKERS workers
#      (configs/digits/mnist_to_uci.ini; Python: DataLoader over the same .npy arrays);
#   2. folder: ResNet-18 + bottleneck head at 224 on a JPEG folder (random-resized-crop + flip +
#      ImageNet normalisation), source-only and DANN, end to end with the loaders;
#   3. preloaded: the same model on batches built once and reused (shiftlab: data.*.preload), the
#      compute-only ceiling; the end-to-end / ceiling ratio says how well the data pipeline hides.
# Both sides: the same model, optimizer (SGD 0.9, wd 5e-4, annealed lr), batch sizes, transforms,
# threads and step counts; WARMUP untimed steps, then STEPS timed ones.
#   0. digits_peer: the digits DANN step (500-wide discriminator, no BatchNorm: TLlib's Linear-ReLU-Dropout
#      layers on both sides) against the fastest Python loop: all images transformed once and held as
#      tensors, batches indexed (no loader).
# Usage: bench/train_bench.sh [BUILD_DIR] [WHICH...]   WHICH: digits digits_peer folder preloaded
#        (default: digits folder preloaded)
# Env: THREADS (intra-op threads, default = cores), WORKERS (2), STEPS / WARMUP per benchmark:
#      DIGITS_STEPS (200) DIGITS_WARMUP (20) FOLDER_STEPS (6) FOLDER_WARMUP (2), METHODS (source_only dann)
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
source "$SRC/scripts/env.sh"   # the data mirror (../shared/sources) where there is one
source "$SRC/bench/lib.sh"
BUILD="${1:-$SRC/build}"
shift || true
WHICH=("${@:-digits folder preloaded}")
WHICH=(${WHICH[*]})
BIN="$BUILD/shiftlab"
PY=/usr/bin/python3
WORK="$BUILD/bench-train"
THREADS="${THREADS:-$(nproc)}"
WORKERS="${WORKERS:-2}"
METHODS="${METHODS:-source_only dann}"
[ -x "$BIN" ] || { echo "no shiftlab binary at $BIN (build first)" >&2; exit 1; }
mkdir -p "$WORK"
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS=1

# images/s of a shiftlab run: metrics.csv rows with images_per_s after the warmup row(s);
# each row covers log_every steps, so the overall rate is a harmonic mean weighted by images.
shiftlab_rate() {  # RUN_DIR WARMUP IMAGES_PER_STEP LOG_EVERY
  "$PY" - "$@" <<'EOF'
import csv, glob, sys
run, warm, ips, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [r for r in csv.DictReader(open(glob.glob(run + "/*/metrics.csv")[0])) if r.get("images_per_s")]
rows = [r for r in rows if int(r["step"]) > warm]
t = sum(every * ips / float(r["images_per_s"]) for r in rows)
print("%.2f" % (len(rows) * every * ips / t))
EOF
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
declare -A RESULT

run_shiftlab() {  # NAME WARMUP STEPS IMAGES_PER_STEP args...
  local name="$1" warm="$2" steps="$3" ips="$4"; shift 4
  rm -rf "$WORK/runs/$name"
  "$BIN" train "$@" --train.steps=$((warm + steps)) --train.log_every="$warm" --train.eval_every=0 \
    --run.threads="$THREADS" --run.root="$WORK/runs" --run.name="$name" --run.log_level=warn >/dev/null
  shiftlab_rate "$WORK/runs/$name" "$warm" "$ips" "$warm"
}

echo "machine: $(getconf _NPROCESSORS_ONLN) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads $THREADS, loader workers $WORKERS"
printf "%-34s %14s %14s %8s\n" "benchmark" "shiftlab img/s" "python img/s" "ratio"

for which in "${WHICH[@]}"; do
  case "$which" in
  digits)
    "$BIN" data prepare mnist --data.root="$WORK/data" >/dev/null
    "$BIN" data prepare uci-digits --data.root="$WORK/data" >/dev/null
    W="${DIGITS_WARMUP:-20}" S="${DIGITS_STEPS:-200}"
    for m in $METHODS; do
      ips=128; [ "$m" = source_only ] && ips=64
      a=$(run_shiftlab "digits_$m" "$W" "$S" "$ips" --config "$SRC/configs/digits/mnist_to_uci.ini" --method="$m" \
          --data.source.root="$WORK/data" --data.target.root="$WORK/data" \
          --data.source.workers="$WORKERS" --data.target.workers="$WORKERS")
      b=$("$PY" "$SRC/bench/train_bench.py" digits "$WORK/data" "$m" "$S" "$W" "$THREADS" "$WORKERS" | awk '/images_per_s/{print $2}')
      printf "%-34s %14s %14s %7sx\n" "1. digits LeNet $m 64+64" "$a" "$b" "$(ratio "$a" "$b")"
    done
    ;;
  digits_peer)
    # the preloaded Python loop (train_bench.py digits_preloaded) against shiftlab's normal run
    "$BIN" data prepare mnist --data.root="$WORK/data" >/dev/null
    "$BIN" data prepare uci-digits --data.root="$WORK/data" >/dev/null
    W="${DIGITS_WARMUP:-20}" S="${PEER_STEPS:-600}"
    for m in $METHODS; do
      ips=128; [ "$m" = source_only ] && ips=64
      a=$(run_shiftlab "peer_$m" "$W" "$S" "$ips" --config "$SRC/configs/digits/mnist_to_uci.ini" --method="$m" \
          --dann.hidden=500 --dann.bn=false --data.source.root="$WORK/data" --data.target.root="$WORK/data" \
          --data.source.workers="$WORKERS" --data.target.workers="$WORKERS")
      b=$("$PY" "$SRC/bench/train_bench.py" digits_preloaded "$WORK/data" "$m" "$S" "$W" "$THREADS" 0 | awk '/images_per_s/{print $2}')
      printf "%-34s %14s %14s %7sx\n" "0. digits $m vs preloaded Python" "$a" "$b" "$(ratio "$a" "$b")"
    done
    ;;
  folder|preloaded)
    bench_jpeg_folder "$BIN" "$PY" "$SRC" "$WORK/jpeg"
    W="${FOLDER_WARMUP:-2}" S="${FOLDER_STEPS:-6}"
    pre=0; [ "$which" = preloaded ] && pre=1
    for m in $METHODS; do
      ips=128; [ "$m" = source_only ] && ips=64
      resnet_args "$WORK/jpeg" 224 256 "$WORKERS" "$pre"
      common=(--method="$m" "${RESNET_ARGS[@]}" --data.target.test_split="$WORK/jpeg/eval.txt"
        --data.target.labelled=false --data.protocol=transductive)  # benchmarks: eval.txt is a subset of all.txt
      a=$(run_shiftlab "${which}_$m" "$W" "$S" "$ips" "${common[@]}")
      b=$("$PY" "$SRC/bench/train_bench.py" "$which" "$WORK/jpeg" "$m" "$S" "$W" "$THREADS" "$WORKERS" | awk '/images_per_s/{print $2}')
      RESULT["${which}_$m"]="$a"
      RESULT["py_${which}_$m"]="$b"
      printf "%-34s %14s %14s %7sx\n" "$([ $pre = 1 ] && echo 3. preloaded || echo 2. JPEG folder) ResNet-18 224 $m" "$a" "$b" "$(ratio "$a" "$b")"
    done
    ;;
  *) echo "unknown benchmark '$which' (digits, digits_peer, folder, preloaded)" >&2; exit 2 ;;
  esac
done
for m in $METHODS; do
  if [ -n "${RESULT[folder_$m]:-}" ] && [ -n "${RESULT[preloaded_$m]:-}" ]; then
    echo "end-to-end / compute-only ceiling, $m: shiftlab $(ratio "${RESULT[folder_$m]}" "${RESULT[preloaded_$m]}"), python $(ratio "${RESULT[py_folder_$m]}" "${RESULT[py_preloaded_$m]}")"
  fi
done
