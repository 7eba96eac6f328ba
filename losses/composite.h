// A weighted sum of methods, built by make_method from a spec such as "dann + 0.1*entropy".
//   loss = sum_i w_i * loss_i
// Each sub-method is a registered submodule named "<i>_<name>" ("0_dann", "1_entropy"), so its
// parameters and buffers are in parameters()/named_buffers() under stable names.
// Terms: each sub-method's first term is its loss and is logged weighted (w_i * loss_i); its
// other terms (accuracies, lambda) are logged unweighted. Names are prefixed by the method name
// where they do not already start with it ("lambda" -> "dann_lambda"); a name already taken by
// an earlier part gets the part index as prefix ("1_dan").
#pragma once

#include <string>
#include <vector>

#include "losses/method.h"

namespace shiftlab::losses {

class CompositeMethod : public MethodImpl {
 public:
  struct Part {
    double weight = 1;
    std::string name;  ///< registry name ("cdan" also for "cdan+E")
    MethodPtr method;
  };
  explicit CompositeMethod(std::vector<Part> parts);

  LossTerms loss(const StepOutputs& out) override;
  /// Union of the parts' taps, in order of first appearance.
  std::vector<std::string> taps() const override;
  bool uses_target() const override;
  bool adabn() const override;
  /// "dann(...) + 0.1*entropy"
  std::string describe() const override;
  const std::vector<Part>& parts() const { return parts_; }

 private:
  std::vector<Part> parts_;
};

}  // namespace shiftlab::losses
