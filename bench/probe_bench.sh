#!/usr/bin/env bash
# Linear-probe benchmark (issue #9 item 5): shiftlab's probe (standardise + multinomial logistic
# regression, L-BFGS) vs scikit-learn StandardScaler + LogisticRegression(lbfgs) on the same
# features, same C, same iteration cap, same thread count.
#   (a) a synthetic 50k × 2048, 65-class Gaussian mixture (+ 10k test rows), generated once;
#   (b) a real cache when given: bench/probe_bench.sh [BUILD_DIR] [CACHE TAP]
# Env: C (default 1), MAX_ITER (100 = sklearn's default), THREADS (1), SIZE="N_TRAIN N_TEST DIM CLASSES".
#      SKIP_SYNTHETIC=1 runs only the real cache.
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$SRC/build}"
BIN="$BUILD/shiftlab"
PY=/usr/bin/python3
C="${C:-1}"
MAX_ITER="${MAX_ITER:-100}"
THREADS="${THREADS:-1}"
SIZE="${SIZE:-50000 10000 2048 65}"
[ -x "$BIN" ] || { echo "no shiftlab binary at $BIN (build first)" >&2; exit 1; }
export OPENBLAS_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
WORK="$BUILD/bench-probe"
mkdir -p "$WORK"

run_one() {  # CACHE TAP LABEL
  local cache="$1" tap="$2" label="$3"
  local out="$WORK/out-$label"
  "$BIN" probe "$cache" --probe.taps="$tap" --probe.Cs="$C" --probe.max_iter="$MAX_ITER" --probe.knn_k=0 \
    --probe.distances=false --probe.scores=false --probe.tsne=false --run.threads="$THREADS" \
    --run.log_level=warn --out="$out" >/dev/null
  local ours
  ours=$("$PY" -c "
import json; t = json.load(open('$out/probe.json'))['taps'][0]
print(t['linear']['seconds'], t['linear']['source_acc'], t['linear']['iterations'], t['linear']['objective'])")
  read -r ot oa oi oo <<<"$ours"
  local sk
  sk=$("$PY" "$SRC/bench/probe_bench.py" sklearn "$cache" "$tap" "$C" "$MAX_ITER")
  local st sa si so
  st=$(echo "$sk" | awk '/^seconds/{print $2}'); sa=$(echo "$sk" | awk '/^accuracy/{print $2}')
  si=$(echo "$sk" | awk '/^iterations/{print $2}'); so=$(echo "$sk" | awk '/^objective/{print $2}')
  echo "$label (tap $tap, C=$C, max_iter $MAX_ITER, $THREADS thread(s)):"
  printf "  shiftlab: %8.2f s  accuracy %6.2f %%  iterations %4s  objective %s\n" "$ot" "$oa" "$oi" "$oo"
  printf "  sklearn:  %8.2f s  accuracy %6.2f %%  iterations %4s  objective %s\n" "$st" "$sa" "$si" "$so"
  "$PY" -c "print('  speed-up %.1fx, accuracy difference %+.2f points' % ($st / $ot, $oa - $sa))"
}

SYN="$WORK/synthetic_${SIZE// /x}.h5"
if [ ! -f "$SYN" ]; then
  echo "generating $SYN ..."
  "$PY" "$SRC/bench/probe_bench.py" make "$SYN.tmp" $SIZE && mv "$SYN.tmp" "$SYN"
fi
echo "$(getconf _NPROCESSORS_ONLN) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
[ "${SKIP_SYNTHETIC:-0}" = 1 ] || run_one "$SYN" pooled synthetic
if [ $# -ge 3 ]; then run_one "$2" "$3" real; fi
