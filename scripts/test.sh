#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (warnings are errors), runs ctest.
# Under CI=true a missing Python reference (torch, sklearn, h5py, ...) fails its test instead of
# skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/build.sh
cd "${SHIFTLAB_BUILD_DIR:-build}"
ctest -j"$(getconf _NPROCESSORS_ONLN)" --output-on-failure --timeout 600
