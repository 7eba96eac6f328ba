// The one SVG plotting module (no dependencies), used by `shiftlab report` (learning curves,
// accuracy per pivot column) and `shiftlab probe` (per-layer transferability, t-SNE):
//  - line charts over a numeric x axis (optionally log) or over labelled categories, with ± error
//    bars, markers, an optional right-hand axis (dashed series), fixed or data-driven ranges, axis
//    ticks and a legend;
//  - 2-D scatter plots coloured by group, with a legend.
#pragma once

#include <Eigen/Core>

#include <string>
#include <vector>

namespace shiftlab::report {

/// One line of a chart. NaN (or missing) y values break the line.
struct LineSeries {
  std::string name;
  std::vector<double> y;    ///< one value per x (per category on a category chart)
  bool right_axis = false;  ///< drawn (dashed) against the right-hand axis
  std::vector<double> x = {};    ///< numeric x positions (ignored on a category chart)
  std::vector<double> err = {};  ///< optional ± error bars (same length as y), e.g. std over seeds
  bool markers = false;     ///< a dot at each point
};

struct LineChart {
  std::string title;
  /// Non-empty: the x axis is these labels, evenly spaced, and every series has one y per label
  /// (an Error otherwise). Empty: the x axis is numeric (series' x).
  std::vector<std::string> categories;
  std::string x_label, left_label, right_label;  ///< axis titles (the right axis drawn when a series uses it)
  double left_min = 0, left_max = 0;    ///< fixed left-axis range; min == max: from the data
  double right_min = 0, right_max = 0;  ///< fixed right-axis range; min == max: from the data
  bool log_x = false;                   ///< numeric x on a log10 scale (x <= 0 skipped)
  int width = 720, height = 420;
  std::vector<LineSeries> series;
};

/// The chart as an SVG document.
std::string line_chart_svg(const LineChart& c);

/// Points Y (N×2) coloured by group[i] ∈ [0, names.size()), with a legend (Error otherwise).
std::string scatter_svg(const std::string& title, const Eigen::MatrixXd& Y, const std::vector<int>& group,
                        const std::vector<std::string>& names);

/// "Nice" axis ticks covering [lo, hi] (about `n` of them): multiples of a step of 1, 2, 2.5 or
/// 5 × 10^k, the first <= lo and the last >= hi ({lo} when hi <= lo).
std::vector<double> nice_ticks(double lo, double hi, int n = 6);

/// Escapes &, <, >, " for SVG text.
std::string xml_escape(const std::string& s);

}  // namespace shiftlab::report
