#include "report/svg.h"

#include "core/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace shiftlab::report {

namespace {
const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string num1(double v) { return core::fixed(v, 1, "nan"); }

std::string tick_label(double v) {
  char b[32];
  if (v != 0 && (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-3))
    std::snprintf(b, sizeof b, "%.0e", v);
  else
    std::snprintf(b, sizeof b, "%g", v);
  return b;
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

std::string line_chart_svg(const std::vector<Series>& series, const ChartOptions& o) {
  const double inf = std::numeric_limits<double>::infinity();
  double x0 = inf, x1 = -inf, y0 = inf, y1 = -inf;
  auto tx = [&](double x) { return o.log_x ? std::log10(x) : x; };
  for (auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i]) || (o.log_x && s.x[i] <= 0)) continue;
      double e = i < s.err.size() && std::isfinite(s.err[i]) ? s.err[i] : 0;
      x0 = std::min(x0, tx(s.x[i]));
      x1 = std::max(x1, tx(s.x[i]));
      y0 = std::min(y0, s.y[i] - e);
      y1 = std::max(y1, s.y[i] + e);
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1, y0 -= 1;
  double pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;

  const double L = 70, R = 170, T = 36, B = 52;
  const double W = o.width - L - R, H = o.height - T - B;
  auto px = [&](double x) { return L + (tx(x) - x0) / (x1 - x0) * W; };
  auto py = [&](double y) { return T + (1 - (y - y0) / (y1 - y0)) * H; };

  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << o.width << "\" height=\"" << o.height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << o.width / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">" << xml_escape(o.title)
      << "</text>\n";
  // grid + ticks
  for (double v : nice_ticks(y0, y1)) {
    if (v < y0 || v > y1) continue;
    svg << "<line x1=\"" << num1(L) << "\" x2=\"" << num1(L + W) << "\" y1=\"" << num1(py(v)) << "\" y2=\""
        << num1(py(v)) << "\" stroke=\"#ddd\"/>\n<text x=\"" << num1(L - 6) << "\" y=\"" << num1(py(v) + 4)
        << "\" text-anchor=\"end\">" << tick_label(v) << "</text>\n";
  }
  std::vector<double> xt;
  if (o.log_x) {
    for (double e = std::floor(x0); e <= std::ceil(x1); e += 1)
      if (e >= x0 - 1e-9 && e <= x1 + 1e-9) xt.push_back(std::pow(10.0, e));
  } else {
    xt = nice_ticks(x0, x1);
  }
  for (double v : xt) {
    double X = px(v);
    if (X < L - 1e-6 || X > L + W + 1e-6) continue;
    svg << "<line x1=\"" << num1(X) << "\" x2=\"" << num1(X) << "\" y1=\"" << num1(T) << "\" y2=\"" << num1(T + H)
        << "\" stroke=\"#eee\"/>\n<text x=\"" << num1(X) << "\" y=\"" << num1(T + H + 16)
        << "\" text-anchor=\"middle\">" << tick_label(v) << "</text>\n";
  }
  svg << "<rect x=\"" << num1(L) << "\" y=\"" << num1(T) << "\" width=\"" << num1(W) << "\" height=\"" << num1(H)
      << "\" fill=\"none\" stroke=\"black\"/>\n"
      << "<text x=\"" << num1(L + W / 2) << "\" y=\"" << o.height - 12 << "\" text-anchor=\"middle\">"
      << xml_escape(o.x_label) << "</text>\n"
      << "<text transform=\"translate(16," << num1(T + H / 2) << ") rotate(-90)\" text-anchor=\"middle\">"
      << xml_escape(o.y_label) << "</text>\n";
  // series
  for (size_t k = 0; k < series.size(); ++k) {
    auto& s = series[k];
    const char* c = kColors[k % 10];
    std::string path;
    bool pen = false;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      bool ok = std::isfinite(s.y[i]) && std::isfinite(s.x[i]) && !(o.log_x && s.x[i] <= 0);
      if (!ok) {
        pen = false;
        continue;
      }
      path += (pen ? " L" : " M") + num1(px(s.x[i])) + " " + num1(py(s.y[i]));
      pen = true;
      if (i < s.err.size() && std::isfinite(s.err[i]) && s.err[i] > 0)
        svg << "<line x1=\"" << num1(px(s.x[i])) << "\" x2=\"" << num1(px(s.x[i])) << "\" y1=\""
            << num1(py(s.y[i] - s.err[i])) << "\" y2=\"" << num1(py(s.y[i] + s.err[i])) << "\" stroke=\"" << c
            << "\"/>\n";
      if (s.markers)
        svg << "<circle cx=\"" << num1(px(s.x[i])) << "\" cy=\"" << num1(py(s.y[i])) << "\" r=\"3\" fill=\"" << c
            << "\"/>\n";
    }
    if (!path.empty())
      svg << "<path d=\"" << path.substr(1) << "\" fill=\"none\" stroke=\"" << c << "\" stroke-width=\"1.6\"/>\n";
    double ly = T + 8 + 18.0 * static_cast<double>(k);
    svg << "<line x1=\"" << num1(L + W + 10) << "\" x2=\"" << num1(L + W + 30) << "\" y1=\"" << num1(ly) << "\" y2=\""
        << num1(ly) << "\" stroke=\"" << c << "\" stroke-width=\"2\"/>\n<text x=\"" << num1(L + W + 35) << "\" y=\""
        << num1(ly + 4) << "\">" << xml_escape(s.name) << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace shiftlab::report
