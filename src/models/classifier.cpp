#include "models/classifier.h"

#include <torch/nn/modules/batchnorm.h>

#include "models/adapter_hook.h"
#include "models/dropout.h"

namespace shiftlab::models {

const core::OptionTable<ModelOptions>& model_option_table() {
  static const auto table = [] {
    using O = ModelOptions;
    core::OptionTable<O> t("models::ModelOptions");
    t.field("model.backbone", [](O& o) -> auto& { return o.backbone.name; },
            "backbone architecture (see `shiftlab list backbones`)")
        .choices_from([] { return backbone_registry().names(); });
    t.field("model.in_channels", [](O& o) -> auto& { return o.backbone.in_channels; },
            "input bands the backbone's first conv takes")
        .range(1, 4096);
    t.field("model.small_stem", [](O& o) -> auto& { return o.backbone.small_stem; },
            "ResNet: 3x3 stride-1 conv1 and no max-pool (28-32 px inputs)");
    t.field("model.image_size", [](O& o) -> auto& { return o.backbone.image_size; },
            "ViT: input side in pixels (sizes the position embedding); convolutional backbones take any size "
            "(each one's native size and eval transform: `shiftlab list backbones`)")
        .range(1, 8192);
    t.field("model.pool", [](O& o) -> auto& { return o.backbone.pool; },
            "ViT pooling: class token or mean of patch tokens")
        .choices({"token", "mean"});
    t.field("model.drop_path", [](O& o) -> auto& { return o.backbone.drop_path; },
            "stochastic depth (ViT, ConvNeXt, EfficientNet; train mode only): rate reached by the deepest block; "
            "-1 = torchvision's default for the architecture (EfficientNet 0.2, ConvNeXt 0.1, ViT 0)")
        .range(-1, 0.99);
    t.field("model.head", [](O& o) -> auto& { return o.head.type; },
            "classifier head: linear, or bottleneck (Linear-BN-ReLU-Dropout) + linear")
        .choices({"linear", "bottleneck"});
    t.field("model.bottleneck_dim", [](O& o) -> auto& { return o.head.bottleneck_dim; },
            "bottleneck width (model.head = bottleneck)")
        .range(1, 1 << 20);
    t.field("model.dropout", [](O& o) -> auto& { return o.head.dropout; },
            "dropout on the features before the classifier")
        .range(0, 0.99);
    t.field("model.freeze", &O::freeze,
            "none | backbone | top:<k> (train only the deepest k backbone layer groups; the head always trains)")
        .check([](std::string& v, const std::string&) { trainable_backbone_groups(v, 1 << 30); });
    t.field("model.bn", &O::bn,
            "backbone BatchNorm: train (batch statistics) or frozen (eval mode, running stats fixed)")
        .choices({"train", "frozen"});
    t.field("model.weights", &O::weights,
            "pretrained backbone weights (.safetensors or .pth); empty = random init")
        .path();
    t.field("model.strict", &O::strict, "weights must match the backbone exactly (head keys are always skipped)");
    return t;
  }();
  return table;
}

int64_t trainable_backbone_groups(const std::string& freeze, int64_t num_groups) {
  if (freeze == "none") return num_groups;
  if (freeze == "backbone") return 0;
  if (freeze.rfind("top:", 0) == 0) {
    std::string k = freeze.substr(4);
    bool digits = !k.empty() && k.size() < 9 && std::all_of(k.begin(), k.end(), ::isdigit);
    core::check_usage(digits, "model.freeze: '", freeze, "' — expected top:<k> with k a non-negative integer");
    int64_t n = std::stoll(k);
    core::check_usage(n <= num_groups, "model.freeze: top:", n, " but the backbone has only ", num_groups,
                      " layer groups");
    return n;
  }
  throw core::UsageError(core::str("model.freeze: unknown value '", freeze, "' (expected none, backbone or top:<k>)"));
}

ClassifierImpl::ClassifierImpl(BackbonePtr backbone, const HeadOptions& head, int64_t num_classes)
    : backbone_(std::move(backbone)), dropout_(head.dropout), num_classes_(num_classes) {
  core::check(backbone_ != nullptr, "Classifier: null backbone");
  core::check_usage(num_classes >= 1, "Classifier: num_classes must be >= 1 (got ", num_classes, ")");
  core::check_usage(head.dropout >= 0 && head.dropout < 1, "model.dropout must be in [0, 1) (got ", head.dropout, ")");
  register_module("backbone", backbone_);
  int64_t d = backbone_->feature_dim();
  if (head.type == "bottleneck") {
    core::check_usage(head.bottleneck_dim >= 1, "model.bottleneck_dim must be >= 1");
    bottleneck_ = register_module(
        "bottleneck", torch::nn::Sequential(torch::nn::Linear(d, head.bottleneck_dim),
                                            torch::nn::BatchNorm1d(head.bottleneck_dim), torch::nn::ReLU(),
                                            models::Dropout(head.dropout)));
    d = head.bottleneck_dim;
  } else {
    core::check_usage(head.type == "linear", "model.head: unknown head '", head.type,
                      "' (expected linear or bottleneck)");
  }
  feature_dim_ = d;
  head_ = register_module("head", torch::nn::Linear(d, num_classes));
}

ClassifierImpl::Output ClassifierImpl::forward(torch::Tensor x, const std::vector<std::string>& taps) {
  std::vector<std::string> want = taps;
  if (std::find(want.begin(), want.end(), "pooled") == want.end()) want.push_back("pooled");
  if (!input_adapter_.is_empty()) x = input_adapter_.forward(x);
  auto feats = backbone_->forward_features(x, want);
  Output out;
  auto f = feats.at("pooled");
  if (bottleneck_)
    f = run_sequential(*bottleneck_, f);  // its BatchNorm1d honours dist.sync_bn
  else if (dropout_ > 0)
    f = models::dropout(f, dropout_, is_training());
  out.features = f;
  out.logits = head_->forward(f);
  for (auto& t : taps) out.taps[t] = pool_tap(*backbone_, feats.at(t));
  return out;
}

void ClassifierImpl::set_input_adapter(torch::nn::AnyModule m) {
  input_adapter_ = std::move(m);
  register_module("input_adapter", input_adapter_.ptr());
}

int64_t ClassifierImpl::input_channels() const {
  if (!input_adapter_.is_empty())
    for (auto& p : input_adapter_.ptr()->named_parameters(/*recurse=*/true))
      if (p.value().dim() == 4) return p.value().size(1);  // a conv C -> backbone bands
  return backbone_->in_channels();
}

void ClassifierImpl::train(bool on) {
  torch::nn::Module::train(on);
  for (auto& m : frozen_bn_) m->train(false);
}

static bool is_batchnorm(const torch::nn::Module& m) {
  return dynamic_cast<const torch::nn::BatchNorm1dImpl*>(&m) || dynamic_cast<const torch::nn::BatchNorm2dImpl*>(&m) ||
         dynamic_cast<const torch::nn::BatchNorm3dImpl*>(&m);
}

void ClassifierImpl::apply_freeze(const std::string& freeze, const std::string& bn) {
  core::check_usage(bn == "train" || bn == "frozen", "model.bn: unknown value '", bn, "' (expected train or frozen)");
  auto groups = backbone_->layer_groups();
  const int64_t G = static_cast<int64_t>(groups.size());
  const int64_t trainable = trainable_backbone_groups(freeze, G);
  // the group a backbone parameter / module belongs to (longest matching prefix wins), -1 if none
  auto group_of = [&](const std::string& name) {
    int64_t best = -1;
    size_t best_len = 0;
    for (int64_t g = 0; g < G; ++g)
      for (auto& p : groups[g].prefixes)
        if (name.compare(0, p.size(), p) == 0 && p.size() >= best_len) best = g, best_len = p.size();
    return best;
  };
  auto frozen_group = [&](const std::string& name) {
    int64_t g = group_of(name);
    return g >= 0 && g < G - trainable;
  };
  // parameters outside every layer group, and those owned by adapter modules (models/adapter_hook.h,
  // e.g. "layer3.0.conv1.lora_A"), keep their requires_grad
  const auto adapter_params = adapter_parameter_names(*backbone_);
  for (auto& kv : backbone_->named_parameters(true))
    if (group_of(kv.key()) >= 0 && !adapter_params.count(kv.key()))
      kv.value().set_requires_grad(!frozen_group(kv.key()));
  for (auto& kv : bottleneck_ ? bottleneck_->parameters() : std::vector<torch::Tensor>{}) kv.set_requires_grad(true);
  for (auto& p : head_->parameters()) p.set_requires_grad(true);
  frozen_bn_.clear();
  for (auto& kv : backbone_->named_modules("", false)) {
    if (!is_batchnorm(*kv.value())) continue;
    if (bn == "frozen" || frozen_group(kv.key() + ".")) frozen_bn_.push_back(kv.value());
  }
  train(is_training());
}

std::vector<LayerGroup> ClassifierImpl::layer_groups() const {
  auto g = backbone_->layer_groups();
  for (auto& x : g)
    for (auto& p : x.prefixes) p = "backbone." + p;
  if (!input_adapter_.is_empty() && !g.empty()) g.front().prefixes.push_back("input_adapter.");
  LayerGroup head{"head", {"head."}};
  if (bottleneck_) head.prefixes.insert(head.prefixes.begin(), "bottleneck.");
  g.push_back(head);
  return g;
}

}  // namespace shiftlab::models
