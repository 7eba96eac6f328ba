// shiftlab report: rebuild the results table and learning curves from existing run or sweep
// directories.
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "apps/command.h"
#include "core/error.h"
#include "core/fs.h"
#include "report/runs.h"

namespace shiftlab::apps {

namespace fs = std::filesystem;

static core::Schema report_schema() {
  core::Schema s;
  s.add_list("by", "", "group runs by these keys: options, or path:N (the N-th directory below the root, 0-based) "
                       "(default: every option that differs between the runs, seeds pooled)");
  s.add_list("columns", "selected,oracle,source_val,mean_class,seconds",
             "table columns: selected, oracle, last, source_val, mean_class, seconds, trainable, method_params");
  s.add_string("pivot", "", "one table column per value of this key (an option or path:N), holding the first "
                            "statistic of --columns; rows grouped by --by");
  s.add_string("baseline", "", "a row (its --by values, e.g. source_only) whose mean the other rows' first "
                               "statistic is compared with (difference in points)");
  s.add_path("chart", "", "with --pivot: write the pivot table as an SVG chart here (one line per row, ± std)");
  s.add_path("out", "", "write results.md, results.csv and curves/ here (default: the directory given, when one)");
  s.add_bool("curves", true, "draw learning curves (accuracies, loss terms, λ) per group as SVG");
  return s;
}

static int run_report(const core::Config& cli, const std::vector<std::string>&) {
  auto runs = report::find_runs(cli.positional);
  core::check(!runs.empty(), "no run directories (with summary.json or probe.json) under ", cli.positional.front());
  auto keys = cli.get_list("by");
  const auto pivot = cli.get_string("pivot");
  const auto columns = cli.get_list("columns");
  const auto baseline = cli.get_string("baseline");
  const auto chart = cli.get_string("chart");
  report::check_columns(columns);
  core::check_usage(chart.empty() || !pivot.empty(), "--chart draws the --pivot table: give --pivot too");
  if (keys.empty()) {
    keys = report::varying_keys(runs);
    if (!pivot.empty()) keys.erase(std::remove(keys.begin(), keys.end(), pivot), keys.end());
  }
  std::vector<report::Group> groups;
  std::vector<std::string> group_keys = keys;
  std::string md;
  if (pivot.empty()) {
    groups = report::group_runs(runs, keys);
    md = report::markdown_table(groups, keys, columns, baseline);
  } else {
    auto p = report::pivot_runs(runs, keys, pivot);
    md = report::pivot_markdown(p, keys, columns, baseline);
    if (!chart.empty()) {
      core::atomic_write(chart, report::pivot_chart_svg(p, columns, "Target-test accuracy by " + pivot));
      std::cout << "wrote " << chart << "\n";
    }
    groups = std::move(p.groups);
    group_keys.push_back(pivot);
  }
  std::cout << runs.size() << " runs in " << groups.size() << " groups\n\n" << md;
  std::string out = cli.get_string("out");
  if (out.empty() && cli.positional.size() == 1) out = cli.positional.front();
  if (!out.empty()) {
    size_t n = report::write_results(out, groups, group_keys, "Results", cli.get_bool("curves"), md);
    std::cout << "\nwrote " << out << "/results.md, results.csv" << (n ? ", " + std::to_string(n) + " curves in curves/" : "")
              << "\n";
  }
  return 0;
}

SHIFTLAB_COMMAND("report", "rebuild results tables (mean ± std over seeds) and learning curves from run directories",
                 report_schema, core::Positionals{"RUN_OR_SWEEP_DIR [DIR...]", 1, SIZE_MAX},
                 "Finds every run directory (one holding summary.json, or a linear probe's probe.json) under the\n"
                 "given directories, groups the runs by the options that differ (or --by), and prints target-test\n"
                 "accuracy selected on source-val beside the oracle choice. Examples:\n"
                 "  shiftlab report runs/digits_table --by data.target.dataset,method --columns selected,oracle,last\n"
                 "  shiftlab report runs/adapters/mnist_to_uci --by path:0 --columns trainable,method_params,selected\n"
                 "  shiftlab report runs/study/n* --by path:0 --pivot data.source.per_class --columns trainable,selected \\\n"
                 "      --baseline scratch --chart study.svg",
                 run_report);

}  // namespace shiftlab::apps
