#!/usr/bin/env bash
# "Bring your own data", end to end on a small photo -> sketch image-folder data set built from a
# prepared one (scripts/byod_make_dataset.py; configs/examples/byod_photo_to_sketch.ini):
#   data prepare -> build the folders -> data check -> train -> extract -> probe -> advise -> train(advice)
#
#   scripts/byod_example.sh [--data DIR] [--out DIR] [--runs DIR] [--dataset mnist|uci-digits]
#                           [--per-class N] [--eval-per-class M] [--steps S]
# --data: where prepared data sets live (default ./data); --out: the image folders (default
# DATA/byod; never commit them); --runs: run directories and caches (default ./runs).
# SHIFTLAB_BIN names the binary (default build/shiftlab). tests/test_data_roles.cpp runs this with tiny
# step counts.
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$SRC/scripts/env.sh"
BIN=${SHIFTLAB_BIN:-$SRC/build/shiftlab}
# Debian's python3 (numpy, PIL) unless PYTHON names another
PY=${PYTHON:-$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3 )}
DATA=./data OUT= RUNS=./runs SET=mnist PER=40 EVAL_PER=10 STEPS=300
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --dataset) SET=$2; shift 2 ;;
    --per-class) PER=$2; shift 2 ;;
    --eval-per-class) EVAL_PER=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "byod_example.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$DATA/byod}
CFG=$SRC/configs/examples/byod_photo_to_sketch.ini
mkdir -p "$RUNS"
EVAL_EVERY=$(( STEPS / 2 > 0 ? STEPS / 2 : 1 ))

echo "== prepare $SET under $DATA, build the image folders in $OUT"
"$BIN" data prepare "$SET" --data.root="$DATA"
"$PY" "$SRC/scripts/byod_make_dataset.py" "$DATA/$SET" "$OUT" --per-class "$PER" --eval-per-class "$EVAL_PER"

roots=(--data.source.root="$OUT/photo/train" --data.source_val.root="$OUT/photo/val"
  --data.target.root="$OUT/sketch/train" --data.target_test.root="$OUT/sketch/test")
common=(--run.root="$RUNS" --train.steps="$STEPS" --train.eval_every="$EVAL_EVERY" --train.log_every="$EVAL_EVERY")

echo "== data check: the four roles, as train will use them"
"$BIN" data check "$CFG" "${roots[@]}"

echo "== train"
"$BIN" train --config "$CFG" "${roots[@]}" "${common[@]}" --run.name=byod | tee "$RUNS/byod_train.txt"
RUN=$(sed -n 's/^run: //p' "$RUNS/byod_train.txt" | tail -n 1)

echo "== extract (blocks source/train, source/val, target/train, target/test) -> probe -> advise"
"$BIN" extract --run "$RUN" --checkpoint=best --taps=conv2,pooled --overwrite=true "$RUNS/byod.h5"
"$BIN" probe "$RUNS/byod.h5" --out="$RUNS/byod_probe" --probe.tsne=false
"$BIN" advise "$RUNS/byod.h5" --out="$RUNS/byod_advice.ini"

echo "== train with the advice"
# the example config first: the data and model settings stay whatever advice.ini records
"$BIN" train --config "$CFG" --config "$RUNS/byod_advice.ini" "${roots[@]}" "${common[@]}" --run.name=byod_advice |
  tee "$RUNS/byod_advice_train.txt"
echo "done: $RUN, $(sed -n 's/^run: //p' "$RUNS/byod_advice_train.txt" | tail -n 1)"
