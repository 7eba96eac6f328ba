// Helpers for the probe tests: .npy fixtures as Eigen matrices, running scripts/probe_reference.py.
#pragma once

#include <Eigen/Core>

#include <string>
#include <vector>

#include "data/npy.h"
#include "support/testing.h"

namespace shiftlab::testutil {

/// A 2-D .npy (C order, any numeric dtype) as an Eigen matrix (rows = first axis).
inline Eigen::MatrixXd npy_matrix(const std::string& path) {
  auto a = data::read_npy(path);
  int64_t r = a.shape.at(0), c = a.shape.size() > 1 ? a.shape[1] : 1;
  Eigen::MatrixXd m(r, c);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) m(i, j) = a.get_double(static_cast<size_t>(i * c + j));
  return m;
}
inline std::vector<int> npy_labels(const std::string& path) {
  auto a = data::read_npy(path);
  std::vector<int> v(static_cast<size_t>(a.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int>(a.get_int(i));
  return v;
}
/// Runs `scripts/probe_reference.py WHAT DIR`; returns "" or the failure output.
inline std::string probe_reference(const std::string& what, const std::string& dir) {
  std::string log;
  int rc = run_shell("/usr/bin/python3 " + source_path("scripts/probe_reference.py") + " " + what + " " + dir + " 2>&1",
                     &log);
  return rc == 0 ? "" : log.empty() ? "probe_reference.py failed" : log;
}

}  // namespace shiftlab::testutil
