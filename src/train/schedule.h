// Learning-rate schedules: a multiplier of each parameter group's base learning rate as a
// function of the step. Registry kind "schedules".
//   constant       1
//   step           gamma^floor(step / step_size)
//   cosine         m + (1 − m)·(1 + cos(π p))/2,  p = step / total, m = min_factor
//   warmup_cosine  (step + 1)/warmup for step < warmup, then cosine over the remaining steps
//   annealing      (1 + α p)^(−β)   (Ganin & Lempitsky's μ0/(1+αp)^β, α = 10, β = 0.75)
// Every schedule may be preceded by a linear warmup (schedule.warmup > 0).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/options.h"
#include "core/registry.h"

namespace shiftlab::train {

struct ScheduleOptions {
  std::string name = "constant";
  int64_t warmup = 0;        ///< linear warmup steps
  int64_t step_size = 1000;  ///< for "step"
  double gamma = 0.1;        ///< for "step"
  double alpha = 10;         ///< for "annealing"
  double beta = 0.75;        ///< for "annealing"
  double min_factor = 0;     ///< for cosine schedules
};

using ScheduleFn = std::function<double(const ScheduleOptions&, int64_t step, int64_t total)>;
core::Registry<ScheduleFn>& schedule_registry();

/// schedule.name, schedule.warmup, schedule.step_size, schedule.gamma, schedule.alpha, schedule.beta,
/// schedule.min_factor.
const core::OptionTable<ScheduleOptions>& schedule_option_table();
inline void declare_schedule_options(core::Schema& s) { schedule_option_table().declare(s); }
inline ScheduleOptions schedule_options_from(const core::Config& c) { return schedule_option_table().read(c); }

/// The learning-rate multiplier at `step` (0-based) of `total` steps, warmup included.
double lr_factor(const ScheduleOptions& o, int64_t step, int64_t total);

}  // namespace shiftlab::train
