#!/usr/bin/env bash
# Compiles the core library, the commands and the test suite each as ONE translation unit (unity
# batches of unlimited size, no optimisation), so two files' file-local helpers with the same name
# fail here rather than in whatever grouping a later change of the file list produces.
# Usage: scripts/check_unity.sh [BUILD_DIR]   (default build-unity-check/; ~5 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-unity-check}
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=None -DSHIFTLAB_UNITY_BATCH=0 -DSHIFTLAB_TEST_UNITY_BATCH=0 \
  -DSHIFTLAB_WERROR=ON >/dev/null
# the objects only: no optimisation and no link, just every name in one scope
objs=$(ninja -C "$dir" -t targets all | grep -o '^[^:]*Unity/unity_0_cxx\.cxx\.o' | sort -u)
ninja -C "$dir" $objs
echo "unity check: every target compiles as one translation unit"
