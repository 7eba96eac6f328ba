// Minimal SVG charts without dependencies: line charts (learning curves, per-layer probes,
// accuracy vs labels per class) with axes, ticks, legend and optional log-x.
#pragma once

#include <string>
#include <vector>

namespace shiftlab::report {

/// One line (or a set of markers) of a chart. NaN y values break the line.
struct Series {
  std::string name;
  std::vector<double> x, y;
  std::vector<double> err;  ///< optional ± error bars (same length as y), e.g. std over seeds
  bool markers = false;     ///< draw a dot at each point
};

struct ChartOptions {
  std::string title, x_label, y_label;
  int width = 640, height = 400;
  bool log_x = false;
};

/// The chart as an SVG document.
std::string line_chart_svg(const std::vector<Series>& series, const ChartOptions& o);

/// "Nice" axis ticks covering [lo, hi] (about `n` of them): multiples of a step of 1, 2, 2.5 or
/// 5 × 10^k, the first <= lo and the last >= hi ({lo} when hi <= lo).
std::vector<double> nice_ticks(double lo, double hi, int n = 6);

/// Escapes &, <, >, " for SVG text.
std::string xml_escape(const std::string& s);

}  // namespace shiftlab::report
