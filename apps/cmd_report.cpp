// shiftlab report: rebuild the results table and learning curves from existing run or sweep
// directories.
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "apps/command.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/runtime.h"
#include "report/runs.h"

namespace shiftlab::apps {

namespace fs = std::filesystem;

namespace {
struct ReportOptions {
  std::vector<std::string> by, pivot_order;
  std::vector<std::string> columns = {"selected", "oracle", "source_val", "mean_class", "seconds"};
  std::string pivot, baseline, chart, out, tune;
  bool curves = true, paired = false;
};

const core::OptionTable<ReportOptions>& report_option_table() {
  static const auto table = [] {
    using O = ReportOptions;
    core::OptionTable<O> t("apps::ReportOptions");
    t.field("by", &O::by,
            "group runs by these keys: options, or path:N (the N-th directory below the root, 0-based) "
            "(default: every option that differs between the runs, seeds pooled)");
    t.field("columns", &O::columns,
            "table columns: selected, oracle, last, source_val, mean_class, seconds, trainable, method_params");
    t.field("pivot", &O::pivot,
            "one table column per value of this key (an option or path:N), holding the first statistic of "
            "--columns; rows grouped by --by; columns ascending (numbers as numbers, else natural order)");
    t.field("pivot_order", &O::pivot_order,
            "with --pivot: these values' columns first, in this order (e.g. 1,5,10,0 to put per_class 0 = all last)");
    t.field("baseline", &O::baseline,
            "a row (its --by values, e.g. source_only) whose mean the other rows' first statistic is compared with "
            "(difference in points)");
    t.field("chart", &O::chart, "with --pivot: write the pivot table as an SVG chart here (one line per row, ± std)")
        .path();
    t.field("out", &O::out, "write results.md, results.csv (tune.csv with --tune) and curves/ here (default: the directory given, when one)")
        .path();
    t.field("tune", &O::tune,
            "a hyper-parameter (e.g. optim.lr) chosen per cell (--by values x --pivot value) by the highest mean "
            "source-val accuracy, without target labels, compared on the seeds all candidates completed; only the "
            "chosen value's runs are reported, the choices and every candidate's source-val are listed under the "
            "table and in tune.csv");
    t.field("paired", &O::paired,
            "with --pivot and --baseline: add a table of differences to the baseline paired by seed (the same "
            "labelled images), mean ± std and paired t");
    t.field("curves", &O::curves, "draw learning curves (accuracies, loss terms, λ) per group as SVG");
    return t;
  }();
  return table;
}
}  // namespace

static core::Schema report_schema() {
  core::Schema s;
  report_option_table().declare(s);
  core::declare_runtime_options(s);  // accepted like every command's (scripts pass --run.threads to all)
  return s;
}

static int run_report(const core::Config& cli, const std::vector<std::string>&) {
  const auto ro = report_option_table().read(cli);
  core::setup_runtime(core::runtime_options_from(cli));
  auto keys = ro.by;
  const auto pivot = ro.pivot;
  const auto columns = ro.columns;
  const auto baseline = ro.baseline;
  const auto chart = ro.chart;
  report::check_columns(columns);
  core::check_usage(chart.empty() || !pivot.empty(), "--chart draws the --pivot table: give --pivot too");
  core::check_usage(ro.pivot_order.empty() || !pivot.empty(), "--pivot_order orders the --pivot columns: give --pivot too");
  core::check_usage(!ro.paired || (!pivot.empty() && !baseline.empty()),
                    "--paired compares the --pivot table's rows with --baseline: give both");
  auto runs = report::find_runs(cli.positional);
  core::check(!runs.empty(), "no run directories (with summary.json or probe.json) under ", cli.positional.front());
  if (keys.empty()) {
    keys = report::varying_keys(runs);
    if (!pivot.empty()) keys.erase(std::remove(keys.begin(), keys.end(), pivot), keys.end());
    if (!ro.tune.empty()) keys.erase(std::remove(keys.begin(), keys.end(), ro.tune), keys.end());
  }
  std::string tuned, tuned_csv;
  if (!ro.tune.empty()) {
    auto cell_keys = keys;
    if (!pivot.empty()) cell_keys.push_back(pivot);
    std::vector<report::TuneChoice> choices;
    runs = report::tune_runs(runs, cell_keys, ro.tune, &choices);
    tuned = report::tune_markdown(choices, ro.tune);
    tuned_csv = report::tune_csv(choices, cell_keys, ro.tune);
  }
  std::vector<report::Group> groups;
  std::vector<std::string> group_keys = keys;
  std::string md;
  if (pivot.empty()) {
    groups = report::group_runs(runs, keys);
    md = report::markdown_table(groups, keys, columns, baseline);
  } else {
    auto p = report::pivot_runs(runs, keys, pivot, ro.pivot_order);
    md = report::pivot_markdown(p, keys, columns, baseline);
    if (ro.paired) md += report::paired_markdown(p, keys, columns, baseline);
    if (!chart.empty()) {
      core::atomic_write(chart, report::pivot_chart_svg(p, columns, "Target-test accuracy by " + pivot));
      std::cout << "wrote " << chart << "\n";
    }
    groups = std::move(p.groups);
    group_keys.push_back(pivot);
  }
  md += tuned;
  std::cout << runs.size() << " runs in " << groups.size() << " groups\n\n" << md;
  std::string out = ro.out;
  if (out.empty() && cli.positional.size() == 1) out = cli.positional.front();
  if (!out.empty()) {
    size_t n = report::write_results(out, groups, group_keys, "Results", ro.curves, md);
    if (!tuned_csv.empty()) core::atomic_write(out + "/tune.csv", tuned_csv);
    std::cout << "\nwrote " << out << "/results.md, results.csv" << (tuned_csv.empty() ? "" : ", tune.csv")
              << (n ? ", " + std::to_string(n) + " curves in curves/" : "") << "\n";
  }
  return 0;
}

SHIFTLAB_COMMAND("report", "rebuild results tables (mean ± std over seeds) and learning curves from run directories",
                 report_schema, core::Positionals{"RUN_OR_SWEEP_DIR [DIR...]", 1, SIZE_MAX},
                 "Finds every run directory (one holding summary.json, or a linear probe's probe.json) under the\n"
                 "given directories, groups the runs by the options that differ (or --by: options, or path:N for the\n"
                 "N-th directory below the root), and prints target-test accuracy selected on source-val beside the\n"
                 "oracle choice. --pivot KEY makes one column per value of KEY, --baseline ROW adds differences to that\n"
                 "row (--paired: paired by seed, with t), --chart FILE draws the pivot table, --tune KEY picks KEY's\n"
                 "value per cell on source-val.\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab train --config configs/digits/mnist_to_uci.ini --method=source_only\n"
                 "  shiftlab train --config configs/digits/mnist_to_uci.ini --method=dann\n"
                 "  shiftlab report runs/digits --by method --out=digits_report\n"
                 "  shiftlab report runs/digits --by method --columns selected,oracle,last,trainable\n"
                 "  shiftlab report runs/digits --by method --tune optim.lr   # the lr of best source-val per method",
                 run_report);

}  // namespace shiftlab::apps
