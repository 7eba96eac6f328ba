#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (warnings are errors), runs ctest.
# Under CI=true a missing Python reference (torch, sklearn, h5py, ...) fails its test instead of
# skipping it.
#   scripts/test.sh               against Debian's libtorch 1.13 (build/)
#   scripts/test.sh --torch=pip   against PyPI's torch 2.11 with CUDA (build-pip/); exit 3 when the
#                                 wheel cannot be fetched
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
torch=debian
for a in "$@"; do
  case $a in
    --torch=debian | --torch=pip) torch=${a#--torch=} ;;
    *) echo "test.sh: unknown argument '$a' (known: --torch=debian|pip)" >&2; exit 2 ;;
  esac
done
build=${SHIFTLAB_BUILD_DIR:-build}
[ "$torch" = pip ] && build=${SHIFTLAB_BUILD_DIR:-build-pip}
rc=0
SHIFTLAB_BUILD_DIR=$build bash scripts/build.sh --torch="$torch" || rc=$?
[ $rc -eq 0 ] || exit $rc
if [ "$torch" = pip ]; then
  # parity tests compare with torchvision on the same libtorch version (kernels differ across versions)
  SHIFTLAB_REFERENCE_PYTHON=$(cat "${SHIFTLAB_CACHE:-$HOME/.cache/shiftlab}/torch-python")
  export SHIFTLAB_REFERENCE_PYTHON
fi
cd "$build"
ctest -j"$(getconf _NPROCESSORS_ONLN)" --output-on-failure --timeout 600
