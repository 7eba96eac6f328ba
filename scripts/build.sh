#!/usr/bin/env bash
# Installs what is missing, then configures and builds shiftlab (Release) into build/.
# Usage: scripts/build.sh [TARGET...] [-- extra cmake args...]
#   no TARGET: everything (binary, tests, fuzz replays); `scripts/build.sh shiftlab_bin`: the binary only.
# The configuration is the same for every caller (warnings are errors everywhere), so the test
# command after the demo builds only what the demo did not.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do targets+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
bash scripts/install_deps.sh
build=${SHIFTLAB_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHIFTLAB_WERROR=ON "$@" >/dev/null
start=$(date +%s)
cmake --build "$build" -j"$(getconf _NPROCESSORS_ONLN)" ${targets[@]:+--target "${targets[@]}"}
echo "build: $(( $(date +%s) - start )) s"
