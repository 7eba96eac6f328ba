// Small number and shape formatting shared by logs, reports and error messages.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

namespace shiftlab::core {

/// Fixed-point with `prec` decimals ("12.35"); "" for nan/inf unless `nonfinite` says otherwise.
inline std::string fixed(double v, int prec = 2, const char* nonfinite = "") {
  if (!std::isfinite(v)) return nonfinite;
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

/// Shortest form with up to `digits` significant digits ("0.001", "1e-08", "224").
inline std::string shortest(double v, int digits = 10) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*g", digits, v);
  return b;
}

/// "[2, 3, 224, 224]" for any sequence of integers (std::vector<int64_t>, at::IntArrayRef, ...).
template <typename Seq>
std::string shape_str(const Seq& dims) {
  std::string out = "[";
  bool first = true;
  for (auto d : dims) {
    out += (first ? "" : ", ") + std::to_string(d);
    first = false;
  }
  return out + "]";
}

/// Seconds elapsed since t0 on the steady clock.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace shiftlab::core
