// Helpers shared by the tests/test_data_*.cpp files: Python fixtures and .npy -> tensor.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>

#include "core/error.h"
#include "data/npy.h"
#include "support/testing.h"

namespace shiftlab::testutil {

/// Runs scripts/data_fixtures.py WHAT DIR once per process; returns DIR.
inline std::string data_fixtures(const std::string& what) {
  static std::map<std::string, std::string> done;
  auto it = done.find(what);
  if (it != done.end()) return it->second;
  std::string dir = fresh_dir("data_fixtures_" + what);
  std::string out;
  int rc = run_shell("/usr/bin/python3 " + source_path("scripts/data_fixtures.py") + " " + what + " " + dir, &out);
  if (rc != 0) throw std::runtime_error("data_fixtures.py " + what + " failed: " + out);
  done[what] = dir;
  return dir;
}

/// Any numeric .npy as a float64 tensor of the same shape.
inline torch::Tensor npy_tensor(const std::string& path) {
  data::NpyArray a = data::read_npy(path);
  auto t = torch::empty(a.shape, torch::kFloat64);
  double* p = t.data_ptr<double>();
  for (int64_t i = 0; i < a.numel(); ++i) p[i] = a.get_double(static_cast<size_t>(i));
  return t;
}

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace shiftlab::testutil
