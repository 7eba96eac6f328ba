#!/usr/bin/env bash
# Loader benchmark: shiftlab's Loader vs torchvision ImageFolder + DataLoader on the same JPEG
# folder (Fashion-MNIST upscaled to 256×256 + crops of real photos), same transforms:
# random-resized-crop 224 + horizontal flip + ImageNet normalisation, batch 64, 2 workers.
# Usage: bench/loader_bench.sh [BUILD_DIR] [BATCHES]     (needs a built shiftlab binary)
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
source "$SRC/scripts/env.sh"   # the data mirror (../shared/sources) where there is one
BUILD="${1:-$SRC/build}"
BATCHES="${2:-30}"
BIN="$BUILD/shiftlab"
WORK="$BUILD/bench-loader"
PY=/usr/bin/python3
WORKERS="${WORKERS:-2}"
BS="${BS:-64}"
[ -x "$BIN" ] || { echo "no shiftlab binary at $BIN (build first)" >&2; exit 1; }
mkdir -p "$WORK"
"$BIN" data prepare fashion-mnist --data.root="$WORK/data" >/dev/null
if [ ! -f "$WORK/jpeg/.done" ]; then
  rm -rf "$WORK/jpeg"
  "$PY" "$SRC/bench/loader_bench.py" make "$WORK/data/fashion-mnist/test_images.npy" "$WORK/jpeg" 2000
  touch "$WORK/jpeg/.done"
fi
echo "folder: $(find "$WORK/jpeg" -name '*.jpg' | wc -l) JPEG files; $(getconf _NPROCESSORS_ONLN) cores; workers $WORKERS, batch $BS, $BATCHES batches"
CPP=$("$BIN" data bench --data.dataset=image_folder --data.root="$WORK/jpeg" \
  --data.transform="random_resized_crop(224), hflip, normalize(imagenet)" \
  --loader.workers="$WORKERS" --loader.batch_size="$BS" --bench.batches="$BATCHES")
echo "$CPP" | sed 's/^/  shiftlab: /'
PYOUT=$(OMP_NUM_THREADS=1 "$PY" "$SRC/bench/loader_bench.py" torch "$WORK/jpeg" "$BATCHES" "$BS" "$WORKERS")
echo "$PYOUT" | sed 's/^/  python:   /'
A=$(echo "$CPP" | awk '/images_per_s/{print $2}')
B=$(echo "$PYOUT" | awk '/images_per_s/{print $2}')
echo "shiftlab ${A} images/s, torchvision ${B} images/s, ratio $(awk -v a="$A" -v b="$B" 'BEGIN{printf "%.2f", a/b}')x"
