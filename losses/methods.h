// The DA-method registry, the typed options of every method, and the composition grammar.
//
// A method spec is a sum of weighted terms (the `sum` grammar of core/spec.h):
//   spec  := term ( '+' term )*
//   term  := [ weight '*' ] name [ '+E' ]      weight: a non-negative number, default 1
// e.g. "dann", "dann + 0.1*entropy", "cdan+E", "0.5*dan + mcc". "+E" (entropy conditioning) is
// only valid after "cdan". A spec with one term of weight 1 builds that method itself; anything
// else builds a CompositeMethod (losses/composite.h) whose loss is sum_i w_i * loss_i.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/registry.h"
#include "losses/method.h"

namespace shiftlab::losses {

/// Knobs of an adversarial (discriminator + GRL) method: DANN and CDAN share them.
struct AdversarialOptions {
  int64_t hidden = 1024;     ///< discriminator width (TLlib: 1024)
  int64_t depth = 2;         ///< number of hidden layers (TLlib: 2)
  bool bn = true;            ///< Linear-BN-ReLU hidden layers; false: Linear-ReLU-Dropout(0.5)
  std::string schedule = "ganin";  ///< "ganin": lambda = max_lambda * (2/(1+exp(-gamma p)) - 1); "constant": max_lambda
  double gamma = 10;         ///< steepness of the Ganin schedule
  double max_lambda = 1;     ///< final (or constant) GRL coefficient
};

struct MethodOptions {
  struct Dann : AdversarialOptions {} dann;
  struct Dan {
    std::vector<double> kernels{0.125, 0.25, 0.5, 1, 2};  ///< bandwidth multipliers (TLlib: 2^-3..2^1)
    std::string estimator = "unbiased";                   ///< biased | unbiased | linear
    std::vector<std::string> taps{"features"};            ///< "features" = f_s/f_t; others from taps_s/t
  } dan;
  struct Jan {
    std::vector<double> kernels{0.125, 0.25, 0.5, 1, 2};  ///< multipliers for the feature kernels
    double softmax_sigma = 0.92;                          ///< fixed bandwidth of the softmax kernel (TLlib)
    std::string estimator = "unbiased";                   ///< biased | unbiased | linear
    std::vector<std::string> taps{"features"};            ///< feature layers joined with softmax
  } jan;
  struct Cdan : AdversarialOptions {
    bool entropy = false;           ///< entropy conditioning (CDAN+E); also set by "cdan+E"
    bool randomized = false;        ///< force the randomized multilinear map
    int64_t random_dim = 1024;      ///< output dimension of the randomized map
    int64_t random_threshold = 4096;  ///< use the randomized map when D*K exceeds this (CDAN paper)
  } cdan;
  struct Coral {
    bool mean_term = false;  ///< add TLlib's mean((mu_s - mu_t)^2) term
  } coral;
  struct Mcc {
    double temperature = 2.5;
  } mcc;
  struct Entropy {
    double diversity = 0;  ///< weight of -H(mean prediction) (information maximisation); 0 = plain entropy
  } entropy;
  struct Bsp {
    int64_t k = 1;  ///< number of largest singular values penalised per domain
  } bsp;
  struct Afn {
    double delta = 1;  ///< SAFN step size of the feature-norm increase
  } afn;
  struct Mdd {
    double margin = 4;         ///< gamma of the margin disparity discrepancy (TLlib: 4)
    int64_t width = 1024;      ///< adversarial head width (TLlib: 1024)
    std::string schedule = "ganin";
    double gamma = 10;
    double max_lambda = 0.1;   ///< GRL coefficient's final value (TLlib: 0.1)
  } mdd;
  std::string spec = "source_only";
};

/// Key "method" (top level) and sections dann.*, dan.*, jan.*, cdan.*, coral.*, mcc.*, entropy.*,
/// bsp.*, afn.*, mdd.*. Reading parses the spec, so a bad spec fails at the app boundary
/// (UsageError naming key "method").
const core::OptionTable<MethodOptions>& method_option_table();
inline void declare_method_options(core::Schema& s) { method_option_table().declare(s); }
inline MethodOptions method_options_from(const core::Config& c) { return method_option_table().read(c); }

/// One parsed term of a spec.
struct MethodTerm {
  double weight = 1;
  std::string name;
  bool entropy_flag = false;  ///< "+E" suffix (cdan only)
};
/// Parses a spec; throws core::SpecError (a UsageError) with the column of the bad token; an
/// unknown name lists the known methods.
std::vector<MethodTerm> parse_method_spec(const std::string& spec);
/// Canonical text of parsed terms; parse_method_spec(format_method_spec(t)) == t.
std::string format_method_spec(const std::vector<MethodTerm>& terms);

/// Builds the (possibly composite) method. feature_dim = D of f_s/f_t, num_classes = K;
/// tap_dims: the pooled dimension of each extra tap a method may ask for.
MethodPtr make_method(const MethodOptions& o, int64_t feature_dim, int64_t num_classes,
                      const std::map<std::string, int64_t>& tap_dims = {});

using MethodFactory = std::function<MethodPtr(const MethodOptions&, int64_t feature_dim, int64_t num_classes,
                                              const std::map<std::string, int64_t>& tap_dims)>;
/// Kind name "methods".
core::Registry<MethodFactory>& method_registry();

}  // namespace shiftlab::losses
