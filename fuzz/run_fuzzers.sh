#!/usr/bin/env bash
# Runs libFuzzer targets one after another (niced, one job each), SECONDS each (default 600), and
# prints the executions and the outcome of every run. Work corpora and crash files go to OUT
# (default /tmp/shiftlab-fuzz); the committed seeds in fuzz/corpus/<target>/ are read, not written.
#
#   fuzz/run_fuzzers.sh BUILD_DIR [SECONDS] [TARGET...]      (BUILD_DIR configured with
#        CXX=clang++ -DSHIFTLAB_FUZZ=ON, targets built: see fuzz/README.md)
set -uo pipefail
build=${1:?usage: run_fuzzers.sh BUILD_DIR [SECONDS] [TARGET...]}
secs=${2:-600}
shift $(( $# >= 2 ? 2 : 1 ))
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(safetensors pth ini image npy list_file h5_cache)
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd)
out=${OUT:-/tmp/shiftlab-fuzz}
mkdir -p "$out"
for t in "${targets[@]}"; do
  bin=$build/fuzz/fuzz_$t
  [ -x "$bin" ] || { echo "$t: $bin not built"; continue; }
  mkdir -p "$out/$t/work" "$out/$t/crashes"
  extra=()
  # Leak detection is off for two targets whose libraries leak on their own error paths (not
  # shiftlab code; each a few KB per rejected file): libtorch 1.13's zip reader keeps its miniz
  # state when PyTorchStreamReader's constructor throws, and HDF5 1.10 keeps object-header cache
  # entries when H5Aexists / H5Oopen fail on a corrupt header.
  asan=${ASAN_OPTIONS:-}
  case $t in pth | h5_cache) extra+=(-detect_leaks=0) asan="detect_leaks=0${asan:+:$asan}" ;; esac
  start=$SECONDS
  ( cd "$out/$t" && rm -f fuzz-0.log &&
    ASAN_OPTIONS=$asan nice -n 10 "$bin" -jobs=1 -workers=1 -max_total_time="$secs" -timeout=20 -rss_limit_mb=3072 -max_len=16384 \
      -print_final_stats=1 -artifact_prefix="$out/$t/crashes/" "${extra[@]}" work "$here/corpus/$t" >/dev/null 2>&1 )
  log=$out/$t/fuzz-0.log
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  crashes=$(ls "$out/$t/crashes" | wc -l)
  echo "$t: ${execs:-?} executions in $((SECONDS - start)) s, $crashes files in crashes/ ($(grep -m1 -E '==ERROR|ERROR: libFuzzer' "$log" || echo 'no crash, leak or timeout'))"
done
