// Helpers shared by the tests/test_data_*.cpp files: Python fixtures and .npy -> tensor.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>

#include "core/error.h"
#include "core/fs.h"
#include "data/npy.h"
#include "support/testing.h"

namespace shiftlab::testutil {

/// Runs scripts/data_fixtures.py WHAT DIR once per build tree and script version (the directory
/// name carries the script's SHA-256; it is built under a temporary name and renamed, so
/// concurrent test processes never see a half-written one); returns DIR. Fixtures are read-only.
inline std::string data_fixtures(const std::string& what) {
  namespace fs = std::filesystem;
  static std::map<std::string, std::string> done;
  auto it = done.find(what);
  if (it != done.end()) return it->second;
  std::string script = source_path("scripts/data_fixtures.py");
  std::string dir = std::string(SHIFTLAB_TEST_TMP) + "/fixtures-" + what + "-" + core::sha256_file(script).substr(0, 12);
  if (!fs::exists(dir + "/.done")) {
    fs::create_directories(SHIFTLAB_TEST_TMP);
    std::string tmp = dir + ".tmp." + std::to_string(::getpid());
    fs::remove_all(tmp);
    std::string out;
    int rc = run_shell("/usr/bin/python3 " + script + " " + what + " " + tmp + " && touch " + tmp + "/.done", &out);
    if (rc != 0) throw std::runtime_error("data_fixtures.py " + what + " failed: " + out);
    std::error_code ec;
    fs::rename(tmp, dir, ec);
    if (ec) fs::remove_all(tmp);  // another process finished first: use its copy
    if (!fs::exists(dir + "/.done")) throw std::runtime_error("fixtures missing in " + dir);
  }
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
