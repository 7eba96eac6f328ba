#!/usr/bin/env bash
# Reproduces the rotated-MNIST table in README.md: DomainBed's Rotated MNIST domains, LeNet trained on
# the 0° domain and adapted to each of 15°, 30°, 45°, 60°, 75° (held-out protocol: adapt on the
# rotated domain's train split, report on its test split), source-only vs DA methods, seeds 0,1,2,
# at configs/digits/rotated_mnist_0_to_45.ini's own settings (3,000 steps).
# One resumable `shiftlab sweep` per target angle (--jobs runs, one thread each), then one
# `shiftlab report` that pivots target accuracy against the angle and draws it (accuracy_vs_angle.svg).
# Rerunning skips finished runs and resumes interrupted ones; wall times go to <root>/wall_times.txt.
# Usage: scripts/rotated_experiments.sh [runs-root] [extra --key=value overrides for every run]
#   env: METHODS, SEEDS (comma lists), ANGLES (space list), JOBS (default 2), SHIFTLAB (binary)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
root=${1:-results/rotated_mnist}
shift || true
bin=${SHIFTLAB:-build/shiftlab}
[ -x "$bin" ] || bash scripts/build.sh shiftlab_bin
$bin data prepare rotated-mnist >/dev/null
methods=${METHODS:-source_only,dann,cdan,mcc,dan}
seeds=${SEEDS:-0,1,2}
mkdir -p "$root"
for angle in ${ANGLES:-15 45 75 30 60}; do   # spread first: a partial run still spans the range
  start=$(date +%s)
  echo "== 0° -> ${angle}° -> $root/deg$angle"
  $bin sweep --config configs/digits/rotated_mnist_0_to_45.ini --grid "method=$methods" --seeds "$seeds" \
    --data.target.split="$angle/train" --data.target.test_split="$angle/test" \
    --jobs "${JOBS:-2}" --run.threads=1 --run.log_level=warn --out "$root/deg$angle" "$@" | tail -n 8
  echo "0 -> $angle: $(( $(date +%s) - start )) s wall" | tee -a "$root/wall_times.txt"
done
$bin report "$root" --by method --pivot data.target.split --columns selected,oracle,last,source_val \
  --baseline source_only --chart "$root/accuracy_vs_angle.svg" --curves=false
