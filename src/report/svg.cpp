#include "report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "core/format.h"

namespace shiftlab::report {

namespace {

const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                          "#7f7f7f", "#bcbd22", "#17becf"};

std::string svg_color(size_t i) {
  if (i < 10) return kPalette[i];
  // beyond ten: spread hues
  std::ostringstream os;
  os << "hsl(" << (i * 137) % 360 << ",65%," << (40 + (i / 10 % 3) * 12) << "%)";
  return os.str();
}

std::string num1(double v) { return core::fixed(v, 1, "nan"); }

std::string tick_label(double v) {
  char b[32];
  if (v != 0 && (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-3))
    std::snprintf(b, sizeof b, "%.0e", v);
  else
    std::snprintf(b, sizeof b, "%g", v);
  return b;
}

void svg_header(std::ostringstream& os, int w, int h, const std::string& title) {
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\" viewBox=\"0 0 " << w
     << " " << h << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
     << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
     << "<text x=\"" << w / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">" << xml_escape(title)
     << "</text>\n";
}

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::vector<double> nice_ticks(double lo, double hi, int n) {
  if (!(hi > lo)) return {lo};
  double raw = (hi - lo) / std::max(1, n - 1);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  // from the last multiple of step at or below lo to the first at or above hi (callers draw
  // those inside their axis range)
  std::vector<double> t;
  const double k0 = std::floor(lo / step + 1e-9), k1 = std::ceil(hi / step - 1e-9);
  for (double k = k0; k <= k1; k += 1) t.push_back(k == 0 ? 0.0 : k * step);
  return t;
}

std::string line_chart_svg(const LineChart& c) {
  const bool cats = !c.categories.empty();
  const size_t n_cat = c.categories.size();
  for (auto& s : c.series) {
    if (cats)
      core::check(s.y.size() == n_cat, "line chart '", c.title, "': series '", s.name, "' has ", s.y.size(),
                  " values for ", n_cat, " categories");
    core::check(s.err.empty() || s.err.size() == s.y.size(), "line chart '", c.title, "': series '", s.name,
                "' has ", s.err.size(), " error bars for ", s.y.size(), " values");
  }
  // the points of a series that can be drawn: (x in axis units, y, err)
  auto xs_of = [&](const LineSeries& s, size_t i, double* x) {
    if (i >= s.y.size() || !std::isfinite(s.y[i])) return false;
    if (cats) return *x = static_cast<double>(i), true;
    if (i >= s.x.size() || !std::isfinite(s.x[i]) || (c.log_x && s.x[i] <= 0)) return false;
    *x = c.log_x ? std::log10(s.x[i]) : s.x[i];
    return true;
  };
  auto err_of = [](const LineSeries& s, size_t i) {
    return i < s.err.size() && std::isfinite(s.err[i]) && s.err[i] > 0 ? s.err[i] : 0.0;
  };
  const double inf = std::numeric_limits<double>::infinity();
  double x0 = inf, x1 = -inf;
  double lo[2] = {inf, inf}, hi[2] = {-inf, -inf};  // [left, right] data ranges incl. error bars
  bool has_right = false;
  for (auto& s : c.series) {
    has_right = has_right || s.right_axis;
    for (size_t i = 0; i < s.y.size(); ++i) {
      double x;
      if (!xs_of(s, i, &x)) continue;
      const double e = err_of(s, i);
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      lo[s.right_axis] = std::min(lo[s.right_axis], s.y[i] - e);
      hi[s.right_axis] = std::max(hi[s.right_axis], s.y[i] + e);
    }
  }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  auto range = [&](int axis, double fmin, double fmax) {
    if (fmin != fmax) return std::pair<double, double>(fmin, fmax);
    double a = lo[axis], b = hi[axis];
    if (!std::isfinite(a)) a = 0, b = 1;
    if (b <= a) b = a + 1, a -= 1;
    const double pad = (b - a) * 0.05;
    return std::pair<double, double>(a - pad, b + pad);
  };
  const auto [l0, l1] = range(0, c.left_min, c.left_max);
  const auto [r0, r1] = range(1, c.right_min, c.right_max);

  const double L = 70, T = 36, B = cats ? 90 : 52, axis_w = has_right ? 64 : 0, legend_w = 190;
  const double W = c.width - L - axis_w - legend_w, H = c.height - T - B;
  auto px = [&](double x) {  // categories: centred in equal slots, off the frame
    if (cats) return L + (x + 0.5) / static_cast<double>(n_cat) * W;
    return L + (x - x0) / (x1 - x0) * W;
  };
  auto py = [&](double y, bool right) {
    const double a = right ? r0 : l0, b = right ? r1 : l1;
    return T + (1 - (y - a) / (b - a)) * H;
  };

  std::ostringstream svg;
  svg_header(svg, c.width, c.height, c.title);
  // grid and ticks: left (with grid lines), right, x
  for (double v : nice_ticks(l0, l1)) {
    if (v < l0 || v > l1) continue;
    svg << "<line x1=\"" << num1(L) << "\" x2=\"" << num1(L + W) << "\" y1=\"" << num1(py(v, false)) << "\" y2=\""
        << num1(py(v, false)) << "\" stroke=\"#ddd\"/>\n<text x=\"" << num1(L - 6) << "\" y=\""
        << num1(py(v, false) + 4) << "\" text-anchor=\"end\">" << tick_label(v) << "</text>\n";
  }
  if (has_right)
    for (double v : nice_ticks(r0, r1)) {
      if (v < r0 || v > r1) continue;
      svg << "<text x=\"" << num1(L + W + 6) << "\" y=\"" << num1(py(v, true) + 4) << "\">" << tick_label(v)
          << "</text>\n";
    }
  if (cats) {
    for (size_t i = 0; i < n_cat; ++i) {
      const double X = px(static_cast<double>(i)), Y = T + H + 16;
      svg << "<text x=\"" << num1(X) << "\" y=\"" << num1(Y) << "\" text-anchor=\"end\" transform=\"rotate(-30 "
          << num1(X) << " " << num1(Y) << ")\">" << xml_escape(c.categories[i]) << "</text>\n";
    }
  } else {
    std::vector<double> xt;
    if (c.log_x) {
      for (double e = std::floor(x0); e <= std::ceil(x1); e += 1)
        if (e >= x0 - 1e-9 && e <= x1 + 1e-9) xt.push_back(e);
    } else {
      xt = nice_ticks(x0, x1);
    }
    for (double v : xt) {
      const double X = px(v);
      if (X < L - 1e-6 || X > L + W + 1e-6) continue;
      svg << "<line x1=\"" << num1(X) << "\" x2=\"" << num1(X) << "\" y1=\"" << num1(T) << "\" y2=\"" << num1(T + H)
          << "\" stroke=\"#eee\"/>\n<text x=\"" << num1(X) << "\" y=\"" << num1(T + H + 16)
          << "\" text-anchor=\"middle\">" << tick_label(c.log_x ? std::pow(10.0, v) : v) << "</text>\n";
    }
  }
  svg << "<rect x=\"" << num1(L) << "\" y=\"" << num1(T) << "\" width=\"" << num1(W) << "\" height=\"" << num1(H)
      << "\" fill=\"none\" stroke=\"#444\"/>\n"
      << "<text x=\"" << num1(L + W / 2) << "\" y=\"" << c.height - 12 << "\" text-anchor=\"middle\">"
      << xml_escape(c.x_label) << "</text>\n"
      << "<text transform=\"translate(16," << num1(T + H / 2) << ") rotate(-90)\" text-anchor=\"middle\">"
      << xml_escape(c.left_label) << "</text>\n";
  if (has_right)
    svg << "<text transform=\"translate(" << num1(L + W + axis_w - 12) << "," << num1(T + H / 2)
        << ") rotate(90)\" text-anchor=\"middle\">" << xml_escape(c.right_label) << "</text>\n";
  // series, each with its legend entry
  for (size_t k = 0; k < c.series.size(); ++k) {
    const auto& s = c.series[k];
    const std::string col = svg_color(k), dash = s.right_axis ? " stroke-dasharray=\"6 4\"" : "";
    std::string path;
    bool pen = false;
    // a point without a neighbour (one logged step: train.steps < train.log_every) draws no line:
    // it gets a dot, so the chart is not empty
    size_t seg_points = 0;
    double seg_x = 0, seg_y = 0;
    auto end_segment = [&] {
      if (seg_points == 1 && !s.markers)
        svg << "<circle cx=\"" << num1(seg_x) << "\" cy=\"" << num1(seg_y) << "\" r=\"3\" fill=\"" << col << "\"/>\n";
      seg_points = 0;
    };
    for (size_t i = 0; i < s.y.size(); ++i) {
      double x;
      if (!xs_of(s, i, &x)) {
        pen = false;
        end_segment();
        continue;
      }
      const double X = px(x), Y = py(s.y[i], s.right_axis), e = err_of(s, i);
      path += (pen ? " L" : " M") + num1(X) + " " + num1(Y);
      pen = true;
      ++seg_points, seg_x = X, seg_y = Y;
      if (e > 0)
        svg << "<line x1=\"" << num1(X) << "\" x2=\"" << num1(X) << "\" y1=\"" << num1(py(s.y[i] - e, s.right_axis))
            << "\" y2=\"" << num1(py(s.y[i] + e, s.right_axis)) << "\" stroke=\"" << col << "\"/>\n";
      if (s.markers)
        svg << "<circle cx=\"" << num1(X) << "\" cy=\"" << num1(Y) << "\" r=\"3\" fill=\"" << col << "\"/>\n";
    }
    end_segment();
    if (!path.empty())
      svg << "<path d=\"" << path.substr(1) << "\" fill=\"none\" stroke=\"" << col << "\" stroke-width=\"1.8\"" << dash
          << "/>\n";
    const double lx = L + W + axis_w + 10, ly = T + 8 + 18.0 * static_cast<double>(k);
    svg << "<line x1=\"" << num1(lx) << "\" x2=\"" << num1(lx + 20) << "\" y1=\"" << num1(ly) << "\" y2=\"" << num1(ly)
        << "\" stroke=\"" << col << "\" stroke-width=\"2\"" << dash << "/>\n<text x=\"" << num1(lx + 25) << "\" y=\""
        << num1(ly + 4) << "\">" << xml_escape(s.name + (s.right_axis ? " (right)" : "")) << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

std::string scatter_svg(const std::string& title, const Eigen::MatrixXd& Y, const std::vector<int>& group,
                        const std::vector<std::string>& names) {
  core::check(Y.cols() == 2 && static_cast<Eigen::Index>(group.size()) == Y.rows(), "scatter '", title, "': ",
              Y.rows(), "x", Y.cols(), " points for ", group.size(), " groups");
  const int W = 640, P = 580, T = 34, L = 20, legend_w = 150;
  std::ostringstream os;
  svg_header(os, W + legend_w, P + T + 20, title);
  double x0 = Y.rows() ? Y.col(0).minCoeff() : 0, x1 = Y.rows() ? Y.col(0).maxCoeff() : 1;
  double y0 = Y.rows() ? Y.col(1).minCoeff() : 0, y1 = Y.rows() ? Y.col(1).maxCoeff() : 1;
  double span = std::max({x1 - x0, y1 - y0, 1e-12});
  for (Eigen::Index i = 0; i < Y.rows(); ++i) {
    double x = L + P * (0.5 + (Y(i, 0) - (x0 + x1) / 2) / span), y = T + P * (0.5 - (Y(i, 1) - (y0 + y1) / 2) / span);
    int g = group[static_cast<size_t>(i)];
    core::check(g >= 0 && static_cast<size_t>(g) < names.size(), "scatter '", title, "': group ", g, " has no name");
    os << "<circle cx=\"" << num1(x) << "\" cy=\"" << num1(y) << "\" r=\"2.5\" fill=\""
       << svg_color(static_cast<size_t>(g)) << "\" fill-opacity=\"0.75\"/>\n";
  }
  for (size_t g = 0; g < names.size(); ++g) {
    int y = T + 16 + static_cast<int>(g) * 18;
    os << "<circle cx=\"" << W + 12 << "\" cy=\"" << y - 4 << "\" r=\"5\" fill=\"" << svg_color(g) << "\"/>\n<text x=\""
       << W + 24 << "\" y=\"" << y << "\">" << xml_escape(names[g]) << "</text>\n";
  }
  os << "</svg>\n";
  return os.str();
}

}  // namespace shiftlab::report
