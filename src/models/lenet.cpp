#include "models/lenet.h"

#include <set>

#include "models/dropout.h"

namespace shiftlab::models {

namespace F = torch::nn::functional;

LeNetImpl::LeNetImpl(const BackboneOptions& o) {
  register_module("0", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.in_channels, 20, 5)));
  conv3_ = register_module("3", torch::nn::Conv2d(torch::nn::Conv2dOptions(20, 50, 5)));
  fc8_ = register_module("8", torch::nn::Linear(50 * 4 * 4, 500));
}

int64_t LeNetImpl::in_channels() const {
  return input_channels_at(*this, "0");
}

std::vector<LayerGroup> LeNetImpl::layer_groups() const {
  return {{"conv1", {"0."}}, {"conv2", {"3."}}, {"fc", {"8."}}};
}

std::map<std::string, torch::Tensor> LeNetImpl::forward_features(torch::Tensor x,
                                                                 const std::vector<std::string>& taps) {
  core::check_usage(x.dim() == 4 && x.size(2) == 28 && x.size(3) == 28,
                    "lenet expects N×C×28×28 inputs (got ", shape_str(x), ")");
  core::check_usage(x.size(1) == in_channels(), "lenet: input has ", x.size(1),
                    " channels but the first conv takes ", in_channels());
  std::set<std::string> want(taps.begin(), taps.end());
  for (auto& t : want)
    core::check_usage(t == "conv1" || t == "conv2" || t == "pooled", "lenet has no tap '", t,
                      "' (taps: conv1, conv2, pooled)");
  std::map<std::string, torch::Tensor> out;
  x = torch::relu(torch::max_pool2d(call_child(*this, "0", x), 2));
  if (want.count("conv1")) out["conv1"] = x;
  if (want.size() == out.size()) return out;
  x = models::feature_dropout(conv3_->forward(x), 0.5, is_training());
  x = torch::relu(torch::max_pool2d(x, 2));
  if (want.count("conv2")) out["conv2"] = x;
  if (want.size() == out.size()) return out;
  x = models::dropout(torch::relu(fc8_->forward(x.flatten(1))), 0.5, is_training());
  out["pooled"] = x;
  return out;
}

torch::Tensor LeNetImpl::forward(torch::Tensor x) { return forward_features(x, {"pooled"})["pooled"]; }

static BackbonePtr make_lenet(const BackboneOptions& o) { return std::make_shared<LeNetImpl>(o); }

SHIFTLAB_REGISTER(backbone_registry(), "lenet", "TLlib digits LeNet (28×28 input, 500-d features)", make_lenet);

}  // namespace shiftlab::models
