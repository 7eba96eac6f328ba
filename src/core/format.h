// Small number and shape formatting shared by logs, reports and error messages.
#pragma once

#include <cctype>
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

/// Natural comparison: digit runs compare as numbers ("layer2" < "layer10").
inline int natural_compare(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = std::isdigit(static_cast<unsigned char>(a[i])), db = std::isdigit(static_cast<unsigned char>(b[j]));
    if (da && db) {
      size_t i1 = i, j1 = j;
      while (i1 < a.size() && a[i1] == '0') ++i1;
      while (j1 < b.size() && b[j1] == '0') ++j1;
      size_t i2 = i1, j2 = j1;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      if (i2 - i1 != j2 - j1) return i2 - i1 < j2 - j1 ? -1 : 1;
      int c = a.compare(i1, i2 - i1, b, j1, j2 - j1);
      if (c != 0) return c < 0 ? -1 : 1;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]) ? -1 : 1;
      ++i;
      ++j;
    }
  }
  if (i < a.size()) return 1;
  if (j < b.size()) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/// Seconds elapsed since t0 on the steady clock.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace shiftlab::core
