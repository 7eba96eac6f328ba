// shiftlab report: rebuild the results table and learning curves from existing run or sweep
// directories.
#include <filesystem>
#include <iostream>

#include "apps/command.h"
#include "core/error.h"
#include "core/fs.h"
#include "report/runs.h"

namespace shiftlab::apps {

namespace fs = std::filesystem;

namespace {
struct ReportOptions {
  std::vector<std::string> by;
  std::string out;
  bool curves = true;
};

const core::OptionTable<ReportOptions>& report_option_table() {
  static const auto table = [] {
    using O = ReportOptions;
    core::OptionTable<O> t("apps::ReportOptions");
    t.field("by", &O::by,
            "group runs by these options (default: every option that differs between the runs, seeds pooled)");
    t.field("out", &O::out, "write results.md, results.csv and curves/ here (default: the directory given, when one)")
        .path();
    t.field("curves", &O::curves, "draw learning curves (accuracies, loss terms, λ) per group as SVG");
    return t;
  }();
  return table;
}
}  // namespace

static core::Schema report_schema() {
  core::Schema s;
  report_option_table().declare(s);
  return s;
}

static int run_report(const core::Config& cli, const std::vector<std::string>&) {
  const auto ro = report_option_table().read(cli);
  auto runs = report::find_runs(cli.positional);
  core::check(!runs.empty(), "no run directories (with summary.json) under ", cli.positional.front());
  auto keys = ro.by;
  if (keys.empty()) keys = report::varying_keys(runs);
  auto groups = report::group_runs(runs, keys);
  auto md = report::markdown_table(groups, keys);
  std::cout << runs.size() << " runs in " << groups.size() << " groups\n\n" << md;
  std::string out = ro.out;
  if (out.empty() && cli.positional.size() == 1) out = cli.positional.front();
  if (!out.empty()) {
    size_t n = report::write_results(out, groups, keys, "Results", ro.curves);
    std::cout << "\nwrote " << out << "/results.md, results.csv" << (n ? ", " + std::to_string(n) + " curves in curves/" : "")
              << "\n";
  }
  return 0;
}

SHIFTLAB_COMMAND("report", "rebuild results tables (mean ± std over seeds) and learning curves from run directories",
                 report_schema, core::Positionals{"RUN_OR_SWEEP_DIR [DIR...]", 1, SIZE_MAX},
                 "Finds every run directory (one holding summary.json) under the given directories, groups the runs\n"
                 "by the options that differ (or --by), and prints target-test accuracy selected on source-val beside\n"
                 "the oracle choice.\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab train --config configs/digits/mnist_to_uci.ini --method=source_only\n"
                 "  shiftlab train --config configs/digits/mnist_to_uci.ini --method=dann\n"
                 "  shiftlab report runs/digits --by method --out=digits_report",
                 run_report);

}  // namespace shiftlab::apps
