#!/usr/bin/env bash
# Installs what is missing, then configures and builds shiftlab (Release) into build/.
# Usage: scripts/build.sh [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
jobs=$(nproc)
werror=OFF
if [ "${CI:-}" = "true" ]; then werror=ON; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHIFTLAB_WERROR=$werror "$@" >/dev/null
start=$(date +%s)
cmake --build build -j"$jobs"
echo "build: $(( $(date +%s) - start )) s"
