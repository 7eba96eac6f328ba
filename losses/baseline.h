// The two methods with no loss of their own: source_only (train on labelled source only; the
// step needs no target batch) and adabn (Li et al. 2016: train as source-only, then the trainer
// re-estimates BatchNorm statistics on target data before evaluation).
#pragma once

#include "losses/method.h"
#include "losses/methods.h"

namespace shiftlab::losses {

/// Zero loss, no terms. uses_target() = false.
class SourceOnlyMethod : public MethodImpl {
 public:
  LossTerms loss(const StepOutputs& out) override;
  bool uses_target() const override { return false; }
  std::string describe() const override { return "source_only"; }
};

/// Zero loss; adabn() = true. The training step needs no target batch (uses_target() = false);
/// target data is used only for the BatchNorm re-estimation the trainer does for adabn().
class AdaBnMethod : public SourceOnlyMethod {
 public:
  bool adabn() const override { return true; }
  std::string describe() const override { return "adabn"; }
};

}  // namespace shiftlab::losses
