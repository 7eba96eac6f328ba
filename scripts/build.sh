#!/usr/bin/env bash
# Installs what is missing, then configures and builds shiftlab (Release).
# Usage: scripts/build.sh [--torch=debian|pip] [TARGET...] [-- extra cmake args...]
#   --torch=debian (default): Debian's libtorch 1.13 (CPU), build dir build/
#   --torch=pip: PyPI's torch 2.11 wheel (CUDA and NCCL compiled in), build dir build-pip/
#   no TARGET: everything (binary, tests, fuzz replay); `scripts/build.sh shiftlab_bin`: the binary only.
# The configuration is the same for every caller (warnings are errors everywhere), so the test
# command after the demo builds only what the demo did not. SHIFTLAB_BUILD_DIR overrides the dir.
set -euo pipefail
cd "$(dirname "$0")/.."
torch=debian
targets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case $1 in
    --torch=*) torch=${1#--torch=} ;;
    *) targets+=("$1") ;;
  esac
  shift
done
[ "${1:-}" = "--" ] && shift
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DSHIFTLAB_WERROR=ON)
case $torch in
  debian)
    bash scripts/install_deps.sh
    build=${SHIFTLAB_BUILD_DIR:-build} ;;
  pip)
    prefix=$(bash scripts/install_deps.sh --torch=pip | tail -n 1)
    build=${SHIFTLAB_BUILD_DIR:-build-pip}
    cmake_args+=(-DCMAKE_PREFIX_PATH="$prefix" -DSHIFTLAB_CUDA=on) ;;
  *) echo "build.sh: unknown --torch=$torch (debian or pip)" >&2; exit 2 ;;
esac
cmake -S . -B "$build" "${cmake_args[@]}" "$@" >"/tmp/shiftlab-cmake-$$.log" 2>&1 ||
  { cat "/tmp/shiftlab-cmake-$$.log"; exit 1; }
rm -f "/tmp/shiftlab-cmake-$$.log"
start=$(date +%s)
cmake --build "$build" -j"$(getconf _NPROCESSORS_ONLN)" ${targets[@]:+--target "${targets[@]}"}
echo "build ($build, libtorch from $torch): $(( $(date +%s) - start )) s"
