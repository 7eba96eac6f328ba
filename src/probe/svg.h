// A tiny SVG writer for the probe pictures (no dependencies): a line chart over categories with
// an optional right-hand axis, and a 2-D scatter coloured by group.
#pragma once

#include <string>
#include <vector>

#include "probe/linalg.h"

namespace shiftlab::probe {

struct LineSeries {
  std::string name;
  std::vector<double> y;  ///< one value per category; NaN = missing (gap)
  bool right_axis = false;
};

struct LineChart {
  std::string title;
  std::vector<std::string> categories;  ///< x axis, left to right
  std::string left_label, right_label;  ///< axis titles (right axis drawn when a series uses it)
  double left_min = 0, left_max = 100;  ///< fixed ranges (min == max: from the data)
  double right_min = 0, right_max = 2;
  std::vector<LineSeries> series;
};

std::string line_chart_svg(const LineChart& c);

/// Points Y (N×2) coloured by group[i] ∈ [0, names.size()), with a legend.
std::string scatter_svg(const std::string& title, const MatrixD& Y, const std::vector<int>& group,
                        const std::vector<std::string>& names);

/// Escapes &, <, >, " for SVG text.
std::string svg_escape(const std::string& s);

}  // namespace shiftlab::probe
