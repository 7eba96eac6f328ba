#include "probe/svg.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "core/error.h"
#include "report/svg.h"

namespace shiftlab::probe {

namespace {

const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                          "#7f7f7f", "#bcbd22", "#17becf"};

std::string color(size_t i) {
  if (i < 10) return kPalette[i];
  // beyond ten groups: spread hues
  std::ostringstream os;
  os << "hsl(" << (i * 137) % 360 << ",65%," << (40 + (i / 10 % 3) * 12) << "%)";
  return os.str();
}

std::string num(double v) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1) << v;
  return os.str();
}

std::string tick(double v) {
  std::ostringstream os;
  os << std::setprecision(3) << v;
  return os.str();
}

void header(std::ostringstream& os, int w, int h, const std::string& title) {
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\" viewBox=\"0 0 " << w
     << " " << h << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
     << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
     << "<text x=\"" << w / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">" << svg_escape(title)
     << "</text>\n";
}

}  // namespace

std::string svg_escape(const std::string& s) { return report::xml_escape(s); }

std::string line_chart_svg(const LineChart& c) {
  core::check(!c.categories.empty(), "line chart '", c.title, "': no categories");
  for (auto& s : c.series)
    core::check(s.y.size() == c.categories.size(), "line chart '", c.title, "': series '", s.name, "' has ",
                s.y.size(), " values for ", c.categories.size(), " categories");
  const int W = 720, H = 420, L = 70, R = 70, T = 40, B = 90;
  const int pw = W - L - R, ph = H - T - B;
  auto range = [&](bool right, double lo, double hi) {
    if (lo != hi) return std::pair<double, double>(lo, hi);
    lo = INFINITY, hi = -INFINITY;
    for (auto& s : c.series)
      if (s.right_axis == right)
        for (double v : s.y)
          if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (!std::isfinite(lo)) lo = 0, hi = 1;
    if (lo == hi) lo -= 0.5, hi += 0.5;
    return std::pair<double, double>(lo, hi);
  };
  auto [l0, l1] = range(false, c.left_min, c.left_max);
  auto [r0, r1] = range(true, c.right_min, c.right_max);
  bool has_right = std::any_of(c.series.begin(), c.series.end(), [](auto& s) { return s.right_axis; });
  const size_t n = c.categories.size();
  auto px = [&](size_t i) { return L + (n == 1 ? pw / 2.0 : pw * static_cast<double>(i) / static_cast<double>(n - 1)); };
  auto py = [&](double v, bool right) {
    double lo = right ? r0 : l0, hi = right ? r1 : l1;
    return T + ph * (1 - (v - lo) / (hi - lo));
  };
  std::ostringstream os;
  header(os, W, H, c.title);
  os << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << pw << "\" height=\"" << ph
     << "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (int k = 0; k <= 5; ++k) {  // grid and ticks
    double v = l0 + (l1 - l0) * k / 5.0, y = py(v, false);
    os << "<line x1=\"" << L << "\" y1=\"" << num(y) << "\" x2=\"" << L + pw << "\" y2=\"" << num(y)
       << "\" stroke=\"#ddd\"/>\n<text x=\"" << L - 6 << "\" y=\"" << num(y + 4) << "\" text-anchor=\"end\">"
       << tick(v) << "</text>\n";
    if (has_right) {
      double vr = r0 + (r1 - r0) * k / 5.0;
      os << "<text x=\"" << L + pw + 6 << "\" y=\"" << num(y + 4) << "\">" << tick(vr) << "</text>\n";
    }
  }
  for (size_t i = 0; i < n; ++i)
    os << "<text x=\"" << num(px(i)) << "\" y=\"" << T + ph + 16 << "\" text-anchor=\"end\" transform=\"rotate(-30 "
       << num(px(i)) << " " << T + ph + 16 << ")\">" << svg_escape(c.categories[i]) << "</text>\n";
  os << "<text transform=\"translate(16 " << T + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
     << svg_escape(c.left_label) << "</text>\n";
  if (has_right)
    os << "<text transform=\"translate(" << W - 14 << " " << T + ph / 2 << ") rotate(90)\" text-anchor=\"middle\">"
       << svg_escape(c.right_label) << "</text>\n";
  for (size_t s = 0; s < c.series.size(); ++s) {
    const auto& se = c.series[s];
    std::string col = color(s), path;
    bool pen = false;
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(se.y[i])) {
        pen = false;
        continue;
      }
      path += (pen ? " L" : " M") + num(px(i)) + " " + num(py(se.y[i], se.right_axis));
      pen = true;
      os << "<circle cx=\"" << num(px(i)) << "\" cy=\"" << num(py(se.y[i], se.right_axis)) << "\" r=\"3.5\" fill=\""
         << col << "\"/>\n";
    }
    if (!path.empty())
      os << "<path d=\"" << path << "\" fill=\"none\" stroke=\"" << col << "\" stroke-width=\"2\""
         << (se.right_axis ? " stroke-dasharray=\"6 4\"" : "") << "/>\n";
    const int ly = H - 18, lx = L + static_cast<int>(s) * 170;
    os << "<line x1=\"" << lx << "\" y1=\"" << ly - 4 << "\" x2=\"" << lx + 22 << "\" y2=\"" << ly - 4 << "\" stroke=\""
       << col << "\" stroke-width=\"2\"" << (se.right_axis ? " stroke-dasharray=\"6 4\"" : "") << "/>\n<text x=\""
       << lx + 27 << "\" y=\"" << ly << "\">" << svg_escape(se.name + (se.right_axis && has_right ? " (right)" : ""))
       << "</text>\n";
  }
  os << "</svg>\n";
  return os.str();
}

std::string scatter_svg(const std::string& title, const MatrixD& Y, const std::vector<int>& group,
                        const std::vector<std::string>& names) {
  core::check(Y.cols() == 2 && static_cast<Eigen::Index>(group.size()) == Y.rows(), "scatter '", title, "': ",
              Y.rows(), "x", Y.cols(), " points for ", group.size(), " groups");
  const int W = 640, P = 580, T = 34, L = 20, legend_w = 150;
  std::ostringstream os;
  header(os, W + legend_w, P + T + 20, title);
  double x0 = Y.rows() ? Y.col(0).minCoeff() : 0, x1 = Y.rows() ? Y.col(0).maxCoeff() : 1;
  double y0 = Y.rows() ? Y.col(1).minCoeff() : 0, y1 = Y.rows() ? Y.col(1).maxCoeff() : 1;
  double span = std::max({x1 - x0, y1 - y0, 1e-12});
  for (Eigen::Index i = 0; i < Y.rows(); ++i) {
    double x = L + P * (0.5 + (Y(i, 0) - (x0 + x1) / 2) / span), y = T + P * (0.5 - (Y(i, 1) - (y0 + y1) / 2) / span);
    int g = group[static_cast<size_t>(i)];
    core::check(g >= 0 && static_cast<size_t>(g) < names.size(), "scatter '", title, "': group ", g, " has no name");
    os << "<circle cx=\"" << num(x) << "\" cy=\"" << num(y) << "\" r=\"2.5\" fill=\"" << color(static_cast<size_t>(g))
       << "\" fill-opacity=\"0.75\"/>\n";
  }
  for (size_t g = 0; g < names.size(); ++g) {
    int y = T + 16 + static_cast<int>(g) * 18;
    os << "<circle cx=\"" << W + 12 << "\" cy=\"" << y - 4 << "\" r=\"5\" fill=\"" << color(g) << "\"/>\n<text x=\""
       << W + 24 << "\" y=\"" << y << "\">" << svg_escape(names[g]) << "</text>\n";
  }
  os << "</svg>\n";
  return os.str();
}

}  // namespace shiftlab::probe
