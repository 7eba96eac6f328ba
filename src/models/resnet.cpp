#include "models/resnet.h"

#include <torch/nn/init.h>

#include <set>

#include "models/adapter_hook.h"

namespace shiftlab::models {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;

static Conv2d resnet_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return Conv2d(Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
}

ResBlockImpl::ResBlockImpl(int64_t in_planes, int64_t planes, int64_t stride, bool bottleneck)
    : bottleneck_(bottleneck) {
  int64_t expansion = bottleneck ? 4 : 1;
  if (bottleneck) {
    conv1_ = register_module("conv1", resnet_conv(in_planes, planes, 1, 1, 0));
    bn1_ = register_module("bn1", BatchNorm2d(planes));
    conv2_ = register_module("conv2", resnet_conv(planes, planes, 3, stride, 1));
    bn2_ = register_module("bn2", BatchNorm2d(planes));
    conv3_ = register_module("conv3", resnet_conv(planes, planes * expansion, 1, 1, 0));
    bn3_ = register_module("bn3", BatchNorm2d(planes * expansion));
  } else {
    conv1_ = register_module("conv1", resnet_conv(in_planes, planes, 3, stride, 1));
    bn1_ = register_module("bn1", BatchNorm2d(planes));
    conv2_ = register_module("conv2", resnet_conv(planes, planes, 3, 1, 1));
    bn2_ = register_module("bn2", BatchNorm2d(planes));
  }
  if (stride != 1 || in_planes != planes * expansion)
    downsample_ = register_module(
        "downsample", torch::nn::Sequential(resnet_conv(in_planes, planes * expansion, 1, stride, 0),
                                            BatchNorm2d(planes * expansion)));
}

torch::Tensor ResBlockImpl::forward(torch::Tensor x) {
  // convolutions are looked up by name so adapters can wrap them (see models/adapter_hook.h)
  auto out = torch::relu(batch_norm(*bn1_, call_child(*this, "conv1", x)));
  if (bottleneck_) {
    out = torch::relu(batch_norm(*bn2_, call_child(*this, "conv2", out)));
    out = batch_norm(*bn3_, call_child(*this, "conv3", out));
  } else {
    out = batch_norm(*bn2_, call_child(*this, "conv2", out));
  }
  torch::Tensor identity = x;
  if (downsample_) {
    auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(downsample_->ptr(1).get());  // built as Conv2d, BatchNorm2d
    identity = batch_norm(*bn, call_child(*this, "downsample.0", x));
  }
  return torch::relu(out + identity);
}

ResNetImpl::ResNetImpl(const BackboneOptions& o, std::vector<int64_t> depths, bool bottleneck)
    : small_stem_(o.small_stem) {
  register_module("conv1", small_stem_ ? resnet_conv(o.in_channels, 64, 3, 1, 1) : resnet_conv(o.in_channels, 64, 7, 2, 3));
  bn1_ = register_module("bn1", BatchNorm2d(64));
  int64_t expansion = bottleneck ? 4 : 1, in_planes = 64;
  for (int s = 0; s < 4; ++s) {
    int64_t planes = 64 << s;
    torch::nn::Sequential stage;
    for (int64_t b = 0; b < depths[s]; ++b) {
      stage->push_back(ResBlock(in_planes, planes, (b == 0 && s > 0) ? 2 : 1, bottleneck));
      in_planes = planes * expansion;
    }
    layers_[s] = register_module("layer" + std::to_string(s + 1), stage);
    stage_channels_.push_back(in_planes);
  }
  depths_ = depths;
  feature_dim_ = in_planes;
  // torchvision's initialisation: kaiming-normal (fan_out, relu) convs, BN weight 1 / bias 0
  for (auto& m : modules(false)) {
    if (auto* c = dynamic_cast<torch::nn::Conv2dImpl*>(m.get()))
      torch::nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut, torch::kReLU);
  }
}

std::vector<LayerGroup> ResNetImpl::layer_groups() const {
  return {{"stem", {"conv1.", "bn1."}},
          {"layer1", {"layer1."}},
          {"layer2", {"layer2."}},
          {"layer3", {"layer3."}},
          {"layer4", {"layer4."}}};
}

std::vector<AdapterSite> ResNetImpl::adapter_sites() const {
  std::vector<AdapterSite> v;
  for (size_t s = 0; s < 4; ++s) v.push_back({"layer" + std::to_string(s + 1), stage_channels_[s], true, ""});
  return v;
}

std::vector<std::string> ResNetImpl::adapter_blocks() const {
  std::vector<std::string> v;
  for (size_t s = 0; s < 4; ++s) {
    const std::string stage = "layer" + std::to_string(s + 1);
    v.push_back(stage);
    for (int64_t b = 0; b < depths_[s]; ++b) v.push_back(stage + "." + std::to_string(b));
  }
  return v;
}

std::map<std::string, torch::Tensor> ResNetImpl::forward_features(torch::Tensor x,
                                                                  const std::vector<std::string>& taps) {
  core::check_usage(x.dim() == 4, "resnet expects N×C×H×W inputs (got ", shape_str(x), ")");
  core::check_usage(x.size(1) == in_channels(), "resnet: input has ", x.size(1),
                    " channels but conv1 takes ", in_channels());
  auto names = tap_names();
  std::set<std::string> want(taps.begin(), taps.end());
  for (auto& t : want)
    core::check_usage(std::find(names.begin(), names.end(), t) != names.end(), "resnet has no tap '", t,
                      "' (taps: stem, layer1..layer4, pooled)");
  std::map<std::string, torch::Tensor> out;
  x = torch::relu(batch_norm(*bn1_, call_child(*this, "conv1", x)));
  if (!small_stem_) x = torch::max_pool2d(x, 3, 2, 1);
  if (want.count("stem")) out["stem"] = x;
  for (int s = 0; s < 4 && out.size() < want.size(); ++s) {
    x = run_post_adapter(*layers_[s], layers_[s]->forward(x));  // "layerK.adapter", if any
    std::string n = "layer" + std::to_string(s + 1);
    if (want.count(n)) out[n] = x;
  }
  if (want.count("pooled")) out["pooled"] = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  return out;
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) { return forward_features(x, {"pooled"})["pooled"]; }

template <int D1, int D2, int D3, int D4, bool B>
static BackbonePtr make_resnet(const BackboneOptions& o) {
  return std::make_shared<ResNetImpl>(o, std::vector<int64_t>{D1, D2, D3, D4}, B);
}

SHIFTLAB_REGISTER(backbone_registry(), "resnet18", "ResNet-18 (torchvision names), 512-d", (make_resnet<2, 2, 2, 2, false>));
SHIFTLAB_REGISTER(backbone_registry(), "resnet34", "ResNet-34 (torchvision names), 512-d", (make_resnet<3, 4, 6, 3, false>));
SHIFTLAB_REGISTER(backbone_registry(), "resnet50", "ResNet-50 (torchvision names), 2048-d", (make_resnet<3, 4, 6, 3, true>));
SHIFTLAB_REGISTER(backbone_registry(), "resnet101", "ResNet-101 (torchvision names), 2048-d", (make_resnet<3, 4, 23, 3, true>));
SHIFTLAB_REGISTER(backbone_registry(), "resnet152", "ResNet-152 (torchvision names), 2048-d", (make_resnet<3, 8, 36, 3, true>));
// input: torchvision's DEFAULT weights (IMAGENET1K_V1 for 18/34, IMAGENET1K_V2 for 50/101/152)
SHIFTLAB_BACKBONE_INFO("resnet18", {224, 256, 0, "bilinear", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                    "ResNet18_Weights.IMAGENET1K_V1"});
SHIFTLAB_BACKBONE_INFO("resnet34", {224, 256, 0, "bilinear", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                    "ResNet34_Weights.IMAGENET1K_V1"});
SHIFTLAB_BACKBONE_INFO("resnet50", {224, 232, 0, "bilinear", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                    "ResNet50_Weights.IMAGENET1K_V2"});
SHIFTLAB_BACKBONE_INFO("resnet101", {224, 232, 0, "bilinear", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                     "ResNet101_Weights.IMAGENET1K_V2"});
SHIFTLAB_BACKBONE_INFO("resnet152", {224, 232, 0, "bilinear", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                     "ResNet152_Weights.IMAGENET1K_V2"});

}  // namespace shiftlab::models
