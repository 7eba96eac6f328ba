// LoRA (Hu et al. 2021): a low-rank update of a frozen weight, y = W x + b + s·B A dropout(x),
// s = alpha / r, A (r × in, Kaiming-uniform as in loralib), B (out × r, zero: identity at start).
//   Linear  W out×in:           A r×in,          B out×r;   parameters r·(in + out)
//   Conv2d  W out×in×kh×kw:     A r×in×kh×kw (same stride / padding / dilation as W, groups 1),
//                               then B as a 1×1 conv;   parameters r·(in·kh·kw + out)
// Candidates: every Linear and every Conv2d with groups = 1 (depthwise convs, e.g. EfficientNet's
// and MobileNetV3's, are not). merge(): W += s · B A (conv: reshaped to W's shape); the merged layer computes the same function
// without the low-rank branch (equal up to float rounding). Spec: lora(r=8,alpha=16,dropout=0)@...
#pragma once

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "adapters/adapter.h"
#include "models/adapter_hook.h"
#include "models/backbones.h"

namespace shiftlab::adapters {

struct LoraOptions {
  int64_t r = 8;         ///< rank
  double alpha = 8;      ///< scale numerator: s = alpha / r
  double dropout = 0;    ///< dropout on the input of the low-rank branch (training only)
};

/// LoRA on a Linear-shaped weight. Wraps a torch::nn::Linear (registers its "weight" / "bias"
/// under the same names, so "blocks.0.attn.qkv.weight" stays), or, with no Linear, tensors owned
/// by the parent (a torchvision attention's in_proj_weight / in_proj_bias), which it does not register.
class LoraLinearImpl : public models::UnaryModuleImpl, public models::AdapterModule {
 public:
  LoraLinearImpl(std::shared_ptr<torch::nn::LinearImpl> base, const LoraOptions& o);
  LoraLinearImpl(torch::Tensor weight, torch::Tensor bias, const LoraOptions& o);
  torch::Tensor forward(torch::Tensor x) override;
  std::vector<std::string> base_parameter_names() const override;
  /// Folds s·B A into the weight (in place) and zeroes B, so forward is unchanged.
  void merge();
  double scale() const { return scale_; }
  /// The wrapped Linear (null for parent-owned tensors).
  std::shared_ptr<torch::nn::LinearImpl> base() const { return base_; }

  torch::Tensor lora_A, lora_B;

 private:
  void init(const LoraOptions& o);
  std::shared_ptr<torch::nn::LinearImpl> base_;
  torch::Tensor weight_, bias_;
  double scale_ = 1, dropout_ = 0;
};
TORCH_MODULE(LoraLinear);

/// LoRA on a Conv2d (groups 1, zero padding); registers the conv's "weight" / "bias".
class LoraConv2dImpl : public models::UnaryModuleImpl, public models::AdapterModule {
 public:
  LoraConv2dImpl(std::shared_ptr<torch::nn::Conv2dImpl> base, const LoraOptions& o);
  torch::Tensor forward(torch::Tensor x) override;
  std::vector<std::string> base_parameter_names() const override;
  void merge();
  double scale() const { return scale_; }
  std::shared_ptr<torch::nn::Conv2dImpl> base() const { return base_; }

  torch::Tensor lora_A, lora_B;

 private:
  std::shared_ptr<torch::nn::Conv2dImpl> base_;
  double scale_ = 1, dropout_ = 0;
};
TORCH_MODULE(LoraConv2d);

/// Reads r, alpha (default r), dropout from a spec.
LoraOptions lora_options_from(const AdapterSpec& spec);

/// Merges every LoRA module below `root` into its base weight and puts the plain Linear / Conv2d
/// back (or removes the in_proj child), so `root` has its original structure and parameter names.
/// Returns the number of modules merged.
int64_t merge_lora(torch::nn::Module& root);

}  // namespace shiftlab::adapters
