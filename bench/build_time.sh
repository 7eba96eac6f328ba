#!/usr/bin/env bash
# Measures the three build figures of a clean checkout on this machine (README, "Development"):
#   1. clean build of the `shiftlab` binary (configure excluded; what scripts/demo.sh builds);
#   2. clean build of everything (binary + tests + fuzz replay; 1. included);
#   3. rebuild of the binary after touching one .cpp of the core library (each FILE given, default three).
# The checkout is a fresh `git clone` of HEAD into a temporary directory, configured exactly as
# scripts/build.sh does (Release, warnings are errors), with ccache disabled so nothing is reused.
# Usage: bench/build_time.sh [FILE...]      (FILE relative to the repo root, e.g. src/core/fs.cpp)
#   TORCH_PREFIX=DIR  builds against another libtorch (CMAKE_PREFIX_PATH), e.g. the pip wheel's.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
files=("$@")
[ ${#files[@]} -eq 0 ] && files=(src/core/fs.cpp src/train/trainer.cpp src/probe/analysis.cpp)
tmp=$(mktemp -d /tmp/shiftlab-build-time.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
git clone -q --no-hardlinks "$here" "$tmp/src"
git -C "$tmp/src" checkout -q "$(git -C "$here" rev-parse HEAD)"
export CCACHE_DISABLE=1
jobs=$(getconf _NPROCESSORS_ONLN)
extra=()
[ -n "${TORCH_PREFIX:-}" ] && extra+=(-DCMAKE_PREFIX_PATH="$TORCH_PREFIX")
cmake -S "$tmp/src" -B "$tmp/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHIFTLAB_WERROR=ON \
  -DCMAKE_CXX_COMPILER_LAUNCHER= "${extra[@]}" >/dev/null
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }
t0=$(now); cmake --build "$tmp/build" -j"$jobs" --target shiftlab_bin >/dev/null; t1=$(now)
cmake --build "$tmp/build" -j"$jobs" >/dev/null; t2=$(now)
bin=$(secs "$t0" "$t1"); all=$(secs "$t0" "$t2")
echo "machine: $jobs cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit:  $(git -C "$here" rev-parse --short=12 HEAD), $(ninja -C "$tmp/build" -t targets all 2>/dev/null | grep -c '\.o:') object files"
printf "clean build, shiftlab binary:            %5d s  (target <= 300 s)\n" "$bin"
printf "clean build, everything incl. tests:     %5d s  (target <= 480 s)\n" "$all"
for f in "${files[@]}"; do
  touch "$tmp/src/$f"
  t0=$(now); cmake --build "$tmp/build" -j"$jobs" --target shiftlab_bin >/dev/null; t1=$(now)
  printf "touch %-32s rebuild binary: %3d s  (target <= 30 s)\n" "$f," "$(secs "$t0" "$t1")"
done
