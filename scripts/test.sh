#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (warnings are errors), runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
CI=true bash scripts/build.sh
cd build
ctest -j"$(nproc)" --output-on-failure --timeout 600
