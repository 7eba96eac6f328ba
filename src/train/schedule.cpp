#include "train/schedule.h"

#include <cmath>

namespace shiftlab::train {

core::Registry<ScheduleFn>& schedule_registry() {
  static core::Registry<ScheduleFn> r("schedules", "learning-rate schedules (schedule.name)");
  return r;
}

const core::OptionTable<ScheduleOptions>& schedule_option_table() {
  static const auto table = [] {
    using O = ScheduleOptions;
    core::OptionTable<O> t("train::ScheduleOptions");
    t.field("schedule.name", &O::name, "learning-rate schedule").choices_from([] { return schedule_registry().names(); });
    t.field("schedule.warmup", &O::warmup, "linear warmup steps before the schedule").range(0, 1e12);
    t.field("schedule.step_size", &O::step_size, "step schedule: steps between decays").range(1, 1e12);
    t.field("schedule.gamma", &O::gamma, "step schedule: decay factor").range(0, 1);
    t.field("schedule.alpha", &O::alpha, "annealing schedule: alpha in (1 + alpha p)^-beta").range(0, 1e6);
    t.field("schedule.beta", &O::beta, "annealing schedule: beta in (1 + alpha p)^-beta").range(0, 100);
    t.field("schedule.min_factor", &O::min_factor, "cosine schedules: final lr as a fraction of the base lr")
        .range(0, 1);
    return t;
  }();
  return table;
}

static double cosine(double p, double m) { return m + (1 - m) * 0.5 * (1 + std::cos(M_PI * std::min(1.0, p))); }

double lr_factor(const ScheduleOptions& o, int64_t step, int64_t total) {
  if (o.warmup > 0 && step < o.warmup) return static_cast<double>(step + 1) / static_cast<double>(o.warmup);
  int64_t s = step - o.warmup, t = std::max<int64_t>(1, total - o.warmup);
  return schedule_registry().get(o.name)(o, s, t);
}

SHIFTLAB_REGISTER(schedule_registry(), "constant", "constant learning rate",
                  [](const ScheduleOptions&, int64_t, int64_t) { return 1.0; });
SHIFTLAB_REGISTER(schedule_registry(), "step", "multiply by gamma every step_size steps",
                  [](const ScheduleOptions& o, int64_t s, int64_t) {
                    return std::pow(o.gamma, static_cast<double>(s / o.step_size));
                  });
SHIFTLAB_REGISTER(schedule_registry(), "cosine", "cosine decay to min_factor over training",
                  [](const ScheduleOptions& o, int64_t s, int64_t t) {
                    return cosine(static_cast<double>(s) / static_cast<double>(t), o.min_factor);
                  });
SHIFTLAB_REGISTER(schedule_registry(), "warmup_cosine", "linear warmup (schedule.warmup) then cosine decay",
                  [](const ScheduleOptions& o, int64_t s, int64_t t) {
                    return cosine(static_cast<double>(s) / static_cast<double>(t), o.min_factor);
                  });
SHIFTLAB_REGISTER(schedule_registry(), "annealing", "Ganin's annealing (1 + alpha p)^-beta (DANN, TLlib)",
                  [](const ScheduleOptions& o, int64_t s, int64_t t) {
                    double p = static_cast<double>(s) / static_cast<double>(t);
                    return std::pow(1 + o.alpha * p, -o.beta);
                  });

}  // namespace shiftlab::train
