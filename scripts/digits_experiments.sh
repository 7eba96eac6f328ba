#!/usr/bin/env bash
# Reproduces the digits table in README.md: MNIST -> UCI digits and UCI digits -> MNIST with
# LeNet, methods x seeds, each one `shiftlab train` run, then a Markdown table of target-test
# accuracy (mean ± std over seeds), source-val-selected beside oracle and last (`shiftlab report`).
# Usage: scripts/digits_experiments.sh [runs-root] [extra --key=value overrides]
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-runs/digits_table}
shift || true
bin=${SHIFTLAB:-build/shiftlab}   # SHIFTLAB=path runs another build (e.g. a copy while rebuilding)
[ -x "$bin" ] || bash scripts/build.sh
$bin data prepare mnist >/dev/null
$bin data prepare uci-digits >/dev/null
methods=${METHODS:-"source_only dann dan jan cdan coral mcc"}
seeds=${SEEDS:-"0 1 2"}
for dir in ${DIRS:-mnist_to_uci uci_to_mnist}; do
  for m in $methods; do
    for s in $seeds; do
      name="$dir/$m/seed$s"
      if ls "$root/$name"/*/summary.json >/dev/null 2>&1 && grep -q '"completed"' "$root/$name"/*/summary.json; then
        echo "skip $name (done)"; continue
      fi
      echo "== $name"
      $bin train --config configs/digits/$dir.ini --method=$m --run.seed=$s --run.root=$root --run.name=$name \
        --run.log_level=warn "$@" | tail -n 1
    done
  done
done
$bin report "$root" --by data.target.dataset,method --columns selected,oracle,last,source_val --curves=false
