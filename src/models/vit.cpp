#include "models/vit.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/version.h>

#include <set>

#include "models/adapter_hook.h"

namespace shiftlab::models {

using torch::nn::LayerNorm;
using torch::nn::LayerNormOptions;
using torch::nn::Linear;

static Linear make_linear(int64_t in, int64_t out) {
  Linear l(in, out);
  torch::nn::init::xavier_uniform_(l->weight);
  torch::nn::init::zeros_(l->bias);
  return l;
}

ViTAttentionImpl::ViTAttentionImpl(int64_t dim, int64_t heads, bool timm_names) : heads_(heads), timm_(timm_names) {
  core::check_usage(heads > 0 && dim % heads == 0, "vit: dim ", dim, " is not divisible by ", heads, " heads");
  if (timm_) {
    register_module("qkv", make_linear(dim, 3 * dim));
    register_module("proj", make_linear(dim, dim));
  } else {
    in_proj_weight_ = register_parameter("in_proj_weight", torch::empty({3 * dim, dim}));
    in_proj_bias_ = register_parameter("in_proj_bias", torch::zeros({3 * dim}));
    torch::nn::init::xavier_uniform_(in_proj_weight_);
    register_module("out_proj", make_linear(dim, dim));
  }
}

torch::Tensor ViTAttentionImpl::forward(torch::Tensor x) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), hd = D / heads_;
  // torchvision: a child "in_proj" (a LoRA wrapper of the packed weight) replaces the plain product
  auto qkv = timm_                        ? call_child(*this, "qkv", x)
             : has_child(*this, "in_proj") ? call_child(*this, "in_proj", x)
                                           : torch::linear(x, in_proj_weight_, in_proj_bias_);
  qkv = qkv.reshape({B, T, 3, heads_, hd}).permute({2, 0, 3, 1, 4});  // 3×B×h×T×hd
  auto q = qkv[0], k = qkv[1], v = qkv[2];
#if TORCH_VERSION_MAJOR >= 2
  auto o = at::scaled_dot_product_attention(q, k, v);
#else
  auto attn = torch::matmul(q * (1.0 / std::sqrt(static_cast<double>(hd))), k.transpose(-2, -1)).softmax(-1);
  auto o = torch::matmul(attn, v);
#endif
  o = o.transpose(1, 2).reshape({B, T, D});
  return call_child(*this, timm_ ? "proj" : "out_proj", o);
}

ViTBlockImpl::ViTBlockImpl(const ViTConfig& c, double drop_path) : timm_(c.timm_names), drop_path_(drop_path) {
  auto ln = [&] { return LayerNorm(LayerNormOptions({c.dim}).eps(1e-6)); };
  norm1_ = register_module(timm_ ? "norm1" : "ln_1", ln());
  attn_ = register_module(timm_ ? "attn" : "self_attention", ViTAttention(c.dim, c.heads, timm_));
  norm2_ = register_module(timm_ ? "norm2" : "ln_2", ln());
  mlp_ = register_module("mlp", std::make_shared<torch::nn::Module>());
  mlp_->register_module(timm_ ? "fc1" : "0", make_linear(c.dim, c.mlp_dim));
  mlp_->register_module(timm_ ? "fc2" : "3", make_linear(c.mlp_dim, c.dim));
}

torch::Tensor ViTBlockImpl::drop(torch::Tensor y) {
  if (!is_training() || drop_path_ <= 0) return y;
  double keep = 1.0 - drop_path_;
  auto mask = torch::empty({y.size(0), 1, 1}, y.options()).bernoulli_(keep) / keep;
  return y * mask;
}

torch::Tensor ViTBlockImpl::forward(torch::Tensor x) {
  // "attn.adapter" / "mlp.adapter" (bottleneck adapters), when present, run on each branch's output
  x = x + drop(run_post_adapter(*attn_, attn_->forward(norm1_->forward(x))));
  auto h = call_child(*mlp_, timm_ ? "fc1" : "0", norm2_->forward(x));
  h = call_child(*mlp_, timm_ ? "fc2" : "3", torch::gelu(h));
  return x + drop(run_post_adapter(*mlp_, h));
}

VisionTransformerImpl::VisionTransformerImpl(const BackboneOptions& o, const ViTConfig& c)
    : cfg_(c), image_size_(o.image_size) {
  if (o.vit_dim) cfg_.dim = o.vit_dim;
  if (o.vit_depth) cfg_.depth = o.vit_depth;
  if (o.vit_heads) cfg_.heads = o.vit_heads;
  if (o.vit_mlp_dim) cfg_.mlp_dim = o.vit_mlp_dim;
  if (o.patch_size) cfg_.patch = o.patch_size;
  core::check_usage(o.pool == "token" || o.pool == "mean", "model.pool must be token or mean (got '", o.pool, "')");
  mean_pool_ = o.pool == "mean";
  core::check_usage(image_size_ > 0 && image_size_ % cfg_.patch == 0, "model.image_size ", image_size_,
                    " is not a positive multiple of the patch size ", cfg_.patch);
  const double drop_path = resolve_drop_path(o, 0.0);  // torchvision's ViT has no stochastic depth
  const int64_t D = cfg_.dim, S = 1 + (image_size_ / cfg_.patch) * (image_size_ / cfg_.patch);
  auto patch_conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(o.in_channels, D, cfg_.patch).stride(cfg_.patch));
  std::shared_ptr<torch::nn::Module> blocks_parent, enc;
  if (cfg_.timm_names) {
    cls_ = register_parameter("cls_token", torch::zeros({1, 1, D}));
    pos_ = register_parameter("pos_embed", torch::randn({1, S, D}) * 0.02);
    auto pe = register_module("patch_embed", std::make_shared<torch::nn::Module>());
    pe->register_module("proj", patch_conv);
    blocks_parent = register_module("blocks", std::make_shared<torch::nn::Module>());
  } else {
    register_module("conv_proj", patch_conv);
    cls_ = register_parameter("class_token", torch::zeros({1, 1, D}));
    enc = register_module("encoder", std::make_shared<torch::nn::Module>());
    pos_ = enc->register_parameter("pos_embedding", torch::randn({1, S, D}) * 0.02);
    blocks_parent = enc->register_module("layers", std::make_shared<torch::nn::Module>());
  }
  for (int64_t i = 0; i < cfg_.depth; ++i) {
    double dp = cfg_.depth > 1 ? drop_path * static_cast<double>(i) / static_cast<double>(cfg_.depth - 1) : drop_path;
    blocks_.push_back(blocks_parent->register_module(
        cfg_.timm_names ? std::to_string(i) : "encoder_layer_" + std::to_string(i), ViTBlock(cfg_, dp)));
  }
  auto norm = LayerNorm(LayerNormOptions({D}).eps(1e-6));
  if (cfg_.timm_names)
    norm_ = register_module("norm", norm);
  else
    norm_ = enc->register_module("ln", norm);
}

std::vector<std::string> VisionTransformerImpl::tap_names() const {
  std::vector<std::string> v{"embed"};
  for (int64_t i = 0; i < cfg_.depth; ++i) v.push_back("blocks." + std::to_string(i));
  v.push_back("norm");
  v.push_back("pooled");
  return v;
}

std::vector<LayerGroup> VisionTransformerImpl::layer_groups() const {
  std::vector<LayerGroup> g;
  if (cfg_.timm_names)
    g.push_back({"embed", {"patch_embed.", "cls_token", "pos_embed"}});
  else
    g.push_back({"embed", {"conv_proj.", "class_token", "encoder.pos_embedding"}});
  for (int64_t i = 0; i < cfg_.depth; ++i)
    g.push_back({"blocks." + std::to_string(i),
                 {cfg_.timm_names ? "blocks." + std::to_string(i) + "." : "encoder.layers.encoder_layer_" + std::to_string(i) + "."}});
  g.push_back({"norm", {cfg_.timm_names ? "norm." : "encoder.ln."}});
  return g;
}

std::vector<AdapterSite> VisionTransformerImpl::adapter_sites() const {
  std::vector<AdapterSite> v;
  for (int64_t i = 0; i < cfg_.depth; ++i) {
    const std::string block =
        cfg_.timm_names ? "blocks." + std::to_string(i) : "encoder.layers.encoder_layer_" + std::to_string(i);
    v.push_back({block + (cfg_.timm_names ? ".attn" : ".self_attention"), cfg_.dim, false, block});
    v.push_back({block + ".mlp", cfg_.dim, false, block});
  }
  return v;
}

torch::Tensor VisionTransformerImpl::pool_tokens(const torch::Tensor& t) const {
  using torch::indexing::Slice;
  return mean_pool_ ? t.index({Slice(), Slice(1)}).mean(1) : t.select(1, 0);
}

std::map<std::string, torch::Tensor> VisionTransformerImpl::forward_features(torch::Tensor x,
                                                                             const std::vector<std::string>& taps) {
  core::check_usage(x.dim() == 4 && x.size(2) == image_size_ && x.size(3) == image_size_, "vit expects N×C×",
                    image_size_, "×", image_size_, " inputs (model.image_size) but got ", shape_str(x));
  core::check_usage(x.size(1) == in_channels(), "vit: input has ", x.size(1), " channels but ", in_conv_name(),
                    " takes ", in_channels());
  auto names = tap_names();
  std::set<std::string> want(taps.begin(), taps.end());
  for (auto& t : want)
    core::check_usage(std::find(names.begin(), names.end(), t) != names.end(), "vit has no tap '", t,
                      "' (taps: embed, blocks.0..blocks.", cfg_.depth - 1, ", norm, pooled)");
  std::map<std::string, torch::Tensor> out;
  const int64_t N = x.size(0);
  x = call_child(*this, in_conv_name(), x);      // N×D×h×w
  x = x.flatten(2).transpose(1, 2);               // N×hw×D
  x = torch::cat({cls_.expand({N, -1, -1}), x}, 1) + pos_;
  if (want.count("embed")) out["embed"] = x;
  for (int64_t i = 0; i < cfg_.depth && out.size() < want.size(); ++i) {
    x = blocks_[i]->forward(x);
    std::string n = "blocks." + std::to_string(i);
    if (want.count(n)) out[n] = x;
  }
  if (out.size() == want.size()) return out;
  x = norm_->forward(x);
  if (want.count("norm")) out["norm"] = x;
  if (want.count("pooled")) out["pooled"] = pool_tokens(x);
  return out;
}

torch::Tensor VisionTransformerImpl::forward(torch::Tensor x) { return forward_features(x, {"pooled"})["pooled"]; }

template <bool Timm, int Dim, int Depth, int Heads, int Mlp>
static BackbonePtr make_vit(const BackboneOptions& o) {
  ViTConfig c;
  c.timm_names = Timm;
  c.patch = 16;
  c.dim = Dim;
  c.depth = Depth;
  c.heads = Heads;
  c.mlp_dim = Mlp;
  return std::make_shared<VisionTransformerImpl>(o, c);
}

SHIFTLAB_REGISTER(backbone_registry(), "vit_b_16", "ViT-B/16 (torchvision names), 768-d",
                  (make_vit<false, 768, 12, 12, 3072>));
SHIFTLAB_REGISTER(backbone_registry(), "vit_tiny_patch16_224", "ViT-Ti/16 (timm names), 192-d",
                  (make_vit<true, 192, 12, 3, 768>));
SHIFTLAB_REGISTER(backbone_registry(), "vit_small_patch16_224", "ViT-S/16 (timm names, DINO), 384-d",
                  (make_vit<true, 384, 12, 6, 1536>));
SHIFTLAB_REGISTER(backbone_registry(), "vit_base_patch16_224", "ViT-B/16 (timm names, DINO), 768-d",
                  (make_vit<true, 768, 12, 12, 3072>));
SHIFTLAB_BACKBONE_INFO("vit_b_16", {224, 256, 0, "bilinear", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                    "ViT_B_16_Weights.IMAGENET1K_V1"});
// DINO's evaluation transform (facebookresearch/dino eval_linear.py); timm's own in21k weights use mean = std = 0.5
SHIFTLAB_BACKBONE_INFO("vit_small_patch16_224", {224, 256, 0, "bicubic", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                                 "DINO ViT-S/16"});
SHIFTLAB_BACKBONE_INFO("vit_base_patch16_224", {224, 256, 0, "bicubic", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                                "DINO ViT-B/16"});

}  // namespace shiftlab::models
