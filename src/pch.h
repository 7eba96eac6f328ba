// Precompiled header: the heavy third-party headers every translation unit uses.
#pragma once
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
