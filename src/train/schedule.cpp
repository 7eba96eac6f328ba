#include "train/schedule.h"

#include <cmath>

namespace shiftlab::train {

core::Registry<ScheduleFn>& schedule_registry() {
  static core::Registry<ScheduleFn> r("schedules", "learning-rate schedules (schedule.name)");
  return r;
}

void declare_schedule_options(core::Schema& s) {
  s.add_registry_choice("schedule.name", "constant", [] { return schedule_registry().names(); },
                        "learning-rate schedule");
  s.add_int("schedule.warmup", 0, "linear warmup steps before the schedule").range(0, 1e12);
  s.add_int("schedule.step_size", 1000, "step schedule: steps between decays").range(1, 1e12);
  s.add_float("schedule.gamma", 0.1, "step schedule: decay factor").range(0, 1);
  s.add_float("schedule.alpha", 10, "annealing schedule: alpha in (1 + alpha p)^-beta").range(0, 1e6);
  s.add_float("schedule.beta", 0.75, "annealing schedule: beta in (1 + alpha p)^-beta").range(0, 100);
  s.add_float("schedule.min_factor", 0, "cosine schedules: final lr as a fraction of the base lr").range(0, 1);
}

ScheduleOptions schedule_options_from(const core::Config& c) {
  ScheduleOptions o;
  o.name = c.get_string("schedule.name");
  o.warmup = c.get_int("schedule.warmup");
  o.step_size = c.get_int("schedule.step_size");
  o.gamma = c.get_float("schedule.gamma");
  o.alpha = c.get_float("schedule.alpha");
  o.beta = c.get_float("schedule.beta");
  o.min_factor = c.get_float("schedule.min_factor");
  return o;
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
