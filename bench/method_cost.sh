#!/usr/bin/env bash
# What each domain-adaptation method costs per training step (issue #21 item 2), shiftlab side.
# Overhead of a method = its step time / the step time of a baseline that forwards the same
# source + target batch through the backbone and adds a negligible term — `entropy` (a softmax
# entropy over the target logits: K numbers per row) — minus 1. So the backbone cost is equal and
# only the alignment term's own cost (its discriminator, kernels, SVDs ...) is counted.
# source_only (which reads no target batch) is listed for reference. AFN runs at TLlib's weight 0.05
# (at weight 1 its stepwise feature-norm growth makes LeNet's loss non-finite by step 5), BSP at
# TLlib's 2e-4 (at 1 the penalty alone makes TLlib's LeNet features non-finite within the run).
#   digits:   LeNet, MNIST -> UCI digits, 64 + 64, STEPS timed steps after WARMUP;
#   resnet:   ResNet-18 + bottleneck at 112 px on preloaded batches (the JPEG folder of
#             bench/train_bench.sh), 64 + 64, RSTEPS timed steps after RWARMUP.
# Each method runs ROUNDS times interleaved with the others (the median is reported), so slow
# phases of a shared machine spread over all methods.
# digits also runs the same step built from TLlib's own modules (bench/tllib_method_cost.py) when
# TLLIB names a checkout of thuml/Transfer-Learning-Library, and prints both side by side.
# Usage: bench/method_cost.sh [BUILD_DIR] [digits] [resnet]
# Env: THREADS (2), STEPS (200), WARMUP (20), RSTEPS (6), RWARMUP (2), ROUNDS (2), METHODS, TLLIB
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
source "$SRC/scripts/env.sh"   # the data mirror (../shared/sources) where there is one
source "$SRC/bench/lib.sh"
BUILD="${1:-$SRC/build}"
shift || true
WHICH=("${@:-digits resnet}")
WHICH=(${WHICH[*]})
BIN="$BUILD/shiftlab"
PY=/usr/bin/python3
WORK="$BUILD/bench-methods"
TB="$BUILD/bench-train"
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-2}"
METHODS="${METHODS:-source_only entropy dann cdan cdan+E dan:unbiased dan:biased dan:linear jan coral mcc 0.0002*bsp 0.05*afn mdd}"
[ -x "$BIN" ] || { echo "no shiftlab binary at $BIN (build first)" >&2; exit 1; }
mkdir -p "$WORK"

# ms per step of a run: metrics rows after the warmup row (each covers log_every = warmup steps)
step_ms() {  # RUN_DIR IMAGES_PER_STEP LOG_EVERY
  "$PY" - "$@" <<'EOF'
import glob, json, sys
run, ips, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [json.loads(l) for l in open(glob.glob(run + "/*/metrics.jsonl")[0]) if '"images_per_s"' in l][1:]
print("%.3f" % (1000 * sum(every * ips / r["images_per_s"] for r in rows) / (len(rows) * every)))
EOF
}
opts_of() {  # METHOD -> shiftlab options
  case "$1" in
    dan:*) echo "--method=dan --dan.estimator=${1#dan:}" ;;
    *) echo "--method=$1" ;;
  esac
}

run_family() {  # NAME WARMUP STEPS common options...
  local fam="$1" warm="$2" steps="$3"
  shift 3
  declare -A T
  for r in $(seq "$ROUNDS"); do
    for m in $METHODS; do
      local name="${fam}_${m//[^a-zA-Z0-9_]/_}_$r" ips=128
      [ "$m" = source_only ] && ips=64
      rm -rf "$WORK/runs/$name"
      # shellcheck disable=SC2046
      if "$BIN" train "$@" $(opts_of "$m") --train.steps=$((warm + steps)) --train.log_every="$warm" \
        --train.eval_every=0 --run.threads="$THREADS" --run.root="$WORK/runs" --run.name="$name" \
        --run.log_level=warn >/dev/null 2>"$WORK/err.txt"; then
        T[$m]="${T[$m]:-} $(step_ms "$WORK/runs/$name" "$ips" "$warm")"
      else
        echo "  $m: run failed: $(tail -n 1 "$WORK/err.txt")"
      fi
    done
  done
  declare -gA MED=()
  local base
  base=$(echo ${T[entropy]} | tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  echo "$fam ($THREADS threads, median of $ROUNDS): ms per step, overhead vs the entropy baseline (same backbone work)"
  for m in $METHODS; do
    local med
    [ -n "${T[$m]:-}" ] || { printf "  %-14s failed (see above)\n" "$m"; continue; }
    med=$(echo ${T[$m]} | tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    MED[$m]=$med
    printf "  %-14s %9.2f ms  %+7.1f %%   (runs: %s)\n" "$m" "$med" "$(awk -v a="$med" -v b="$base" 'BEGIN{print 100*(a/b-1)}')" "${T[$m]# }"
  done
}

echo "machine: $(getconf _NPROCESSORS_ONLN) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for which in "${WHICH[@]}"; do
  case "$which" in
  digits)
    "$BIN" data prepare mnist --data.root="$TB/data" >/dev/null
    "$BIN" data prepare uci-digits --data.root="$TB/data" >/dev/null
    run_family digits "${WARMUP:-20}" "${STEPS:-200}" --config "$SRC/configs/digits/mnist_to_uci.ini" \
      --data.source.root="$TB/data" --data.target.root="$TB/data"
    if [ -n "${TLLIB:-}" ]; then
      peer_methods=$(for m in $METHODS; do [ "$m" = source_only ] || [ "$m" = dan:unbiased ] || echo "$m"; done)
      # shellcheck disable=SC2086
      "$PY" "$SRC/bench/tllib_method_cost.py" "$TLLIB" "$TB/data" "$THREADS" "${STEPS:-200}" "${WARMUP:-20}" \
        "$ROUNDS" $peer_methods > "$WORK/tllib.txt"
      grep '^#' "$WORK/tllib.txt"
      base=${MED[entropy]}
      echo "  side by side (ms per step; overhead vs each side's own entropy baseline; TLlib has no unbiased MMD):"
      printf "  %-14s %10s %9s | %10s %9s | %s\n" method shiftlab overhead TLlib overhead "TLlib ms / shiftlab ms"
      while read -r m ms over _; do
        [ -n "${MED[$m]:-}" ] || continue
        printf "  %-14s %7.2f ms %+8.1f%% | %7.2f ms %+8.1f%% | %5.2fx\n" "$m" "${MED[$m]}" \
          "$(awk -v a="${MED[$m]}" -v b="$base" 'BEGIN{print 100*(a/b-1)}')" "$ms" "$over" \
          "$(awk -v a="$ms" -v b="${MED[$m]}" 'BEGIN{print a/b}')"
      done < <(grep -v '^#' "$WORK/tllib.txt")
    fi
    ;;
  resnet)
    [ -f "$TB/jpeg/.done" ] || { echo "run bench/train_bench.sh $BUILD folder first (it makes $TB/jpeg)" >&2; exit 1; }
    resnet_args "$TB/jpeg" 112 112 1 1
    common=("${RESNET_ARGS[@]}" --data.target.test_fraction=0.03 --eval.batch_size=64)
    run_family resnet18_112 "${RWARMUP:-2}" "${RSTEPS:-6}" "${common[@]}"
    ;;
  *) echo "unknown family '$which' (digits, resnet)" >&2; exit 2 ;;
  esac
done
