# Sourced by the scripts: a read-only mirror of source files beside the checkout
# (../shared/sources, for machines without the npm registry) unless SHIFTLAB_DATA_MIRROR is set.
if [ -z "${SHIFTLAB_DATA_MIRROR:-}" ] && [ -d "$(dirname "${BASH_SOURCE[0]}")/../../shared/sources" ]; then
  SHIFTLAB_DATA_MIRROR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../shared/sources" && pwd)
  export SHIFTLAB_DATA_MIRROR
fi
