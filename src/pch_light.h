// Light precompiled header (CMakeLists.txt, "the core library"): ATen/c10 without torch::nn, for the
// sources that use tensors but no modules, optimisers or autograd functions.
#pragma once
#include <torch/types.h>

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
