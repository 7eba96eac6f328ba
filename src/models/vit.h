// Vision Transformer (ViT) with either torchvision's or timm's parameter names.
//
//   x (N×C×H×W, H = W = image_size) -> patch conv p×p/p -> N×(H/p·W/p)×D tokens
//     -> prepend class token, add position embedding          tap "embed"    N×T×D (T = 1 + HW/p²)
//     -> blocks: x += attn(LN(x)); x += mlp(LN(x))              taps "blocks.i" N×T×D
//        attn: qkv = x W_qkv + b, heads of size D/h, softmax(q kᵀ/√(D/h)) v, out-projection
//        mlp:  fc2(GELU(fc1(x)))  (exact erf GELU), LayerNorm eps 1e-6
//     -> final LayerNorm                                         tap "norm"     N×T×D
//     -> pool: "token" = class token, "mean" = mean of patch tokens  "pooled"  N×D
// Names, torchvision: conv_proj, class_token, encoder.pos_embedding,
//   encoder.layers.encoder_layer_i.{ln_1, self_attention.{in_proj_weight, in_proj_bias, out_proj},
//   ln_2, mlp.0, mlp.3}, encoder.ln.
// Names, timm: patch_embed.proj, cls_token, pos_embed, blocks.i.{norm1, attn.qkv, attn.proj, norm2,
//   mlp.fc1, mlp.fc2}, norm.  (qkv rows are [q; k; v] in both, heads contiguous within each.)
// "mean" pooling averages the final-normed patch tokens (DINO's convention).
// Adapters (models/adapter_hook.h): qkv / proj / out_proj / MLP Linears and the patch conv run by
// name (call_child); a child "adapter" of a block's attention or MLP runs on that branch's output;
// a torchvision attention runs its child "in_proj" (LoRA on in_proj_weight) when present.
#pragma once

#include <torch/nn/modules/normalization.h>

#include "models/backbones.h"

namespace shiftlab::models {

struct ViTConfig {
  bool timm_names = false;
  int64_t patch = 16, dim = 768, depth = 12, heads = 12, mlp_dim = 3072;
};

/// Multi-head self-attention over N×T×D tokens (names per ViTConfig::timm_names).
class ViTAttentionImpl : public torch::nn::Module {
 public:
  ViTAttentionImpl(int64_t dim, int64_t heads, bool timm_names);
  torch::Tensor forward(torch::Tensor x);

 private:
  int64_t heads_;
  bool timm_;
  torch::Tensor in_proj_weight_, in_proj_bias_;  // torchvision names only
};
TORCH_MODULE(ViTAttention);

/// Pre-norm transformer block with stochastic depth `drop_path` (train mode only).
class ViTBlockImpl : public torch::nn::Module {
 public:
  ViTBlockImpl(const ViTConfig& c, double drop_path);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::Tensor drop(torch::Tensor y);
  bool timm_;
  double drop_path_;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  ViTAttention attn_{nullptr};
  std::shared_ptr<torch::nn::Module> mlp_;
};
TORCH_MODULE(ViTBlock);

class VisionTransformerImpl : public BackboneImpl {
 public:
  VisionTransformerImpl(const BackboneOptions& o, const ViTConfig& c);
  torch::Tensor forward(torch::Tensor x) override;
  std::map<std::string, torch::Tensor> forward_features(torch::Tensor x,
                                                        const std::vector<std::string>& taps) override;
  std::vector<std::string> tap_names() const override;
  int64_t feature_dim() const override { return cfg_.dim; }
  std::vector<LayerGroup> layer_groups() const override;
  std::string in_conv_name() const override { return cfg_.timm_names ? "patch_embed.proj" : "conv_proj"; }
  int64_t in_channels() const override { return input_channels_at(*this, in_conv_name()); }
  bool supports_adapters() const override { return true; }
  /// every block's attention and MLP branch (D channels over the tokens), selected also by the
  /// block's name; no residual adapters (no k×k convolution stages)
  std::vector<AdapterSite> adapter_sites() const override;

  /// N×T×D tokens -> N×D by this model's pooling (class token or mean of patch tokens).
  torch::Tensor pool_tokens(const torch::Tensor& tokens) const;
  const ViTConfig& config() const { return cfg_; }
  int64_t image_size() const { return image_size_; }

 private:
  ViTConfig cfg_;
  int64_t image_size_;
  bool mean_pool_;
  torch::Tensor cls_, pos_;
  std::vector<ViTBlock> blocks_;
  torch::nn::LayerNorm norm_{nullptr};
};

}  // namespace shiftlab::models
