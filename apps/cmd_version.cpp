// shiftlab version: shiftlab and libtorch versions, CUDA availability, BLAS, distributed backends.
#include <torch/utils.h>

#include <iostream>

#include "apps/command.h"
#include "core/runtime.h"
#include "train/dist.h"

namespace shiftlab::apps {

static int run_version(const core::Config&, const std::vector<std::string>&) {
  std::cout << "shiftlab " << core::shiftlab_version() << "\n"
            << "libtorch " << core::torch_version() << "\n"
            << "cuda " << (core::cuda_available() ? "available" : "not available") << "\n"
            << "blas " << core::blas_provider() << "\n"
            << "distributed "
            << (train::dist_backends_compiled().empty() ? std::string("not built (no c10d Gloo/NCCL headers)")
                                                         : train::dist_backends_compiled())
            << "\n";
  return 0;
}

SHIFTLAB_COMMAND("version", "print the shiftlab and libtorch versions and whether CUDA is available",
                 [] { return core::Schema(); }, core::Positionals{"", 0, 0},
                 "Examples:\n"
                 "  shiftlab version\n"
                 "  shiftlab --version",
                 run_version);

}  // namespace shiftlab::apps
