#!/usr/bin/env bash
# Reproduces the digits tables in README.md: MNIST -> UCI digits and UCI digits -> MNIST with LeNet
# at the configs' own settings (3,000 steps), every method x seeds 0,1,2, under both protocols:
#   held_out      adapt on the target's train split, report on its test split (never seen);
#   transductive  adapt on all target images (split = all) and report on those same images (the
#                 protocol of most DA papers; labelled TRANSDUCTIVE in every summary).
# One resumable `shiftlab sweep` per direction x protocol (--jobs runs, one thread each), then
# `shiftlab report` over all of them. Rerunning skips finished runs and resumes interrupted ones.
# The default root, results/digits_table, is in the repository: its finished runs (summaries,
# metrics, resolved configs; checkpoints are ignored) are committed, so a clean checkout continues
# the tables where the last machine stopped. Wall times per sweep: results/digits_table/wall_times.txt.
# Usage: scripts/digits_experiments.sh [runs-root] [extra --key=value overrides for every run]
#   env: METHODS, SEEDS (comma lists), DIRS, PROTOCOLS (space lists), JOBS (default 2), SHIFTLAB
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
root=${1:-results/digits_table}
shift || true
bin=${SHIFTLAB:-build/shiftlab}   # SHIFTLAB=path runs another build (e.g. a copy while rebuilding)
[ -x "$bin" ] || bash scripts/build.sh shiftlab_bin
$bin data prepare mnist >/dev/null
$bin data prepare uci-digits >/dev/null
methods=${METHODS:-source_only,dann,dan,jan,cdan,coral,mcc}
seeds=${SEEDS:-0,1,2}
mkdir -p "$root"
for dir in ${DIRS:-mnist_to_uci uci_to_mnist}; do
  for proto in ${PROTOCOLS:-held_out transductive}; do
    extra=()
    [ "$proto" = transductive ] && extra=(--data.protocol=transductive --data.target.split=all)
    start=$(date +%s)
    echo "== $dir, $proto protocol -> $root/$dir/$proto"
    $bin sweep --config "configs/digits/$dir.ini" --grid "method=$methods" --seeds "$seeds" \
      --jobs "${JOBS:-2}" --run.threads=1 --run.log_level=warn --out "$root/$dir/$proto" \
      "${extra[@]}" "$@" | tail -n 12
    echo "$dir $proto: $(( $(date +%s) - start )) s wall" | tee -a "$root/wall_times.txt"
  done
done
$bin report "$root" --by data.target.dataset,data.protocol,method \
  --columns selected,oracle,last,source_val --curves=false
