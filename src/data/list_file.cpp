#include "data/list_file.h"

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/options.h"

namespace shiftlab::data {

namespace fs = std::filesystem;
using core::check;

ListFileEntries parse_list_file(const std::string& text, const std::string& list, const std::string& root) {
  ListFileEntries out;
  std::istringstream in(text);
  std::string line;
  int64_t row = 0;
  while (std::getline(in, line)) {
    ++row;
    check(line.find('\0') == std::string::npos, "'", list, "' line ", row, ": NUL byte (not a text list file)");
    std::string t = core::trim(line);
    if (t.empty() || t[0] == '#') continue;
    std::string p = t;
    int64_t label = -1;
    auto sp = t.find_last_of(" \t");
    if (sp != std::string::npos) {
      std::string last = t.substr(sp + 1);
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(last.c_str(), &end, 10);
      if (end && *end == 0 && !last.empty()) {
        check(v >= 0, "'", list, "' line ", row, ": negative label ", last);
        check(errno != ERANGE && v < kMaxClasses, "'", list, "' line ", row, ": label ", last,
              " is out of range (at most ", kMaxClasses, " classes)");
        label = v;
        p = core::trim(t.substr(0, sp));
      } else if (!last.empty() && last.find_first_of("0123456789") != std::string::npos) {
        // "img.png 1.5", "img.png 2.0", "img.png -1e3": a number, but not a class index
        char* dend = nullptr;
        [[maybe_unused]] double dv = std::strtod(last.c_str(), &dend);
        check(!(dend && *dend == 0), "'", list, "' line ", row, ": label ", last,
              " is not an integer (labels are class indices 0, 1, 2, ...)");
      }
    }
    out.paths.push_back(fs::path(p).is_absolute() ? p : (fs::path(root) / p).string());
    out.labels.push_back(label);
    out.rows.push_back(row);
  }
  return out;
}

void check_list_labels(const ListFileEntries& e, const std::string& list, bool labelled) {
  if (!labelled) return;
  size_t with = 0;
  for (auto l : e.labels) with += l >= 0;
  if (with == 0) return;
  for (size_t i = 0; i < e.labels.size(); ++i)
    check(e.labels[i] >= 0, "'", list, "' line ", i < e.rows.size() ? e.rows[i] : static_cast<int64_t>(i + 1),
          ": no label, but ", with, " other line(s) have one (a labelled domain needs a label on every line; or set "
          "labelled = false)");
}

}  // namespace shiftlab::data
