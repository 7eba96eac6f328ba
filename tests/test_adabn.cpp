// AdaBN (train::adabn_recompute): the re-estimated BatchNorm running statistics against the
// statistics computed here directly from the target features that reach each BatchNorm layer —
// one batch (the plain mean and unbiased variance over the whole target set) and several batches
// (PyTorch's cumulative average: the mean of the per-batch means and unbiased variances, over the
// loader's own batches).
#include <gtest/gtest.h>

#include "data/dataset.h"
#include "data/loader.h"
#include "models/backbones.h"
#include "models/classifier.h"
#include "train/trainer.h"

using namespace shiftlab;

namespace {

/// Unlabelled images held in memory (N×C×H×W), no transform.
class AdabnImages : public data::Dataset {
 public:
  explicit AdabnImages(torch::Tensor x) : x_(std::move(x)) {}
  size_t size() const override { return static_cast<size_t>(x_.size(0)); }
  data::Sample get(size_t i, uint64_t) const override {
    data::Sample s;
    s.image = x_[static_cast<int64_t>(i)].clone();
    s.index = static_cast<int64_t>(i);
    return s;
  }
  int64_t num_classes() const override { return 0; }
  std::vector<int64_t> labels() const override { return std::vector<int64_t>(size(), -1); }
  std::string describe() const override { return "adabn test images"; }

 private:
  torch::Tensor x_;
};

/// Per-channel statistics of the input of a BatchNorm layer: z is N×C or N×C×H×W.
struct AdabnStats {
  torch::Tensor mean, var;  ///< C each, var unbiased
};
AdabnStats adabn_stats_of(const torch::Tensor& z) {
  auto flat = z.dim() == 2 ? z : z.transpose(0, 1).reshape({z.size(1), -1}).t();  // rows = N(·H·W)
  auto d = flat.to(torch::kDouble);
  return {d.mean(0), d.var(0, /*unbiased=*/true)};
}

/// The reference with batches: the loader's order for epoch 0 (as adabn_recompute loads it),
/// cut into batches, each batch's statistics of `input_of(images)`, averaged with equal weights.
AdabnStats adabn_reference(const torch::Tensor& x, int64_t batch_size,
                           const std::function<torch::Tensor(const torch::Tensor&)>& input_of) {
  AdabnImages ds(x);
  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.shuffle = true;
  lo.drop_last = false;
  auto order = data::epoch_order(ds, lo, 0);
  EXPECT_EQ(order.size(), static_cast<size_t>(x.size(0)));
  torch::Tensor mean_sum, var_sum;
  int64_t batches = 0;
  for (size_t b = 0; b < order.size(); b += static_cast<size_t>(batch_size)) {
    std::vector<int64_t> idx(order.begin() + static_cast<long>(b),
                             order.begin() + static_cast<long>(std::min(order.size(), b + static_cast<size_t>(batch_size))));
    auto st = adabn_stats_of(input_of(x.index_select(0, torch::tensor(idx))));
    mean_sum = batches ? mean_sum + st.mean : st.mean;
    var_sum = batches ? var_sum + st.var : st.var;
    ++batches;
  }
  return {mean_sum / static_cast<double>(batches), var_sum / static_cast<double>(batches)};
}

/// max |got - want| relative to max |want| (float32 features: ~1e-6 expected).
double adabn_rel_err(const torch::Tensor& got, const torch::Tensor& want) {
  auto w = want.to(torch::kDouble);
  return (got.to(torch::kDouble) - w).abs().max().item<double>() / std::max(1e-12, w.abs().max().item<double>());
}

torch::nn::Module& adabn_module(torch::nn::Module& m, const std::string& name) {
  auto mods = m.named_modules();
  auto* p = mods.find(name);
  if (!p) throw std::runtime_error("no module " + name);
  return **p;
}

/// Garbage running statistics and a changed momentum, so a test sees that they are reset and
/// that the momentum comes back.
template <typename BN>
void adabn_spoil(BN& bn) {
  torch::NoGradGuard ng;
  bn.running_mean.fill_(5.0);
  bn.running_var.fill_(7.0);
  bn.num_batches_tracked.fill_(123);
}

}  // namespace

// LeNet (dropout inside, in train mode) + a bottleneck head Linear-BN1d-ReLU-Dropout: the
// BatchNorm's input is bottleneck.0(LeNet features) of the target images, dropout not applied.
TEST(AdaBN, BottleneckBatchNormEqualsTargetFeatureStatistics) {
  torch::manual_seed(11);
  models::BackboneOptions bo;
  bo.name = "lenet";
  bo.in_channels = 1;
  models::HeadOptions ho;
  ho.type = "bottleneck";
  ho.bottleneck_dim = 16;
  ho.dropout = 0.5;
  models::Classifier m(models::make_backbone(bo), ho, 10);
  auto& bn = dynamic_cast<torch::nn::BatchNorm1dImpl&>(adabn_module(*m, "bottleneck.1"));
  auto& lin = dynamic_cast<torch::nn::LinearImpl&>(adabn_module(*m, "bottleneck.0"));
  // target images with other statistics than the initialisation's
  auto x = torch::randn({36, 1, 28, 28}) * 1.7 + 0.6;
  auto features_in = [&](const torch::Tensor& imgs) {
    torch::NoGradGuard ng;
    bool was = m->is_training();
    m->backbone()->eval();  // the features themselves: no dropout
    auto z = lin.forward(m->backbone()->forward(imgs));
    m->train(was);
    return z;
  };
  auto ds = std::make_shared<AdabnImages>(x);
  for (int64_t bs : {36, 8}) {  // one batch of all; 5 batches (4 × 8 + 4)
    SCOPED_TRACE(testing::Message() << "batch size " << bs);
    adabn_spoil(bn);
    m->eval();
    train::adabn_recompute(*m, ds, bs, 1, torch::kCPU);
    EXPECT_FALSE(m->is_training()) << "the model's mode is restored";
    ASSERT_TRUE(bn.options.momentum().has_value());
    EXPECT_DOUBLE_EQ(*bn.options.momentum(), 0.1) << "the momentum is restored";
    EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), (36 + bs - 1) / bs);
    auto want = adabn_reference(x, bs, features_in);
    if (bs == 36) {  // one batch: the plain statistics of every target feature
      auto all = adabn_stats_of(features_in(x));
      EXPECT_LT(adabn_rel_err(want.mean, all.mean), 1e-5);
      EXPECT_LT(adabn_rel_err(want.var, all.var), 1e-5);
    }
    EXPECT_LT(adabn_rel_err(bn.running_mean, want.mean), 1e-4)
        << bn.running_mean << "\nwant\n" << want.mean;
    EXPECT_LT(adabn_rel_err(bn.running_var, want.var), 1e-4) << bn.running_var << "\nwant\n" << want.var;
  }
}

// ResNet-18 (small stem): the stem BatchNorm's input is conv1 of the target images; every
// BatchNorm layer is reset and re-estimated over the same batches.
TEST(AdaBN, ResNetStemBatchNormEqualsConvOutputStatistics) {
  torch::manual_seed(12);
  models::BackboneOptions bo;
  bo.name = "resnet18";
  bo.in_channels = 3;
  bo.small_stem = true;
  models::Classifier m(models::make_backbone(bo), models::HeadOptions{}, 10);
  auto x = torch::rand({20, 3, 32, 32}) * 2.0 - 0.3;
  auto& conv1 = dynamic_cast<torch::nn::Conv2dImpl&>(adabn_module(*m, "backbone.conv1"));
  auto& bn1 = dynamic_cast<torch::nn::BatchNorm2dImpl&>(adabn_module(*m, "backbone.bn1"));
  int bns = 0;
  for (auto& kv : m->named_modules())
    if (auto* b = dynamic_cast<torch::nn::BatchNorm2dImpl*>(kv.value().get())) adabn_spoil(*b), ++bns;
  ASSERT_EQ(bns, 20);  // stem + 2 per basic block × 8 + 3 downsample
  auto ds = std::make_shared<AdabnImages>(x);
  m->train(true);
  train::adabn_recompute(*m, ds, 6, 1, torch::kCPU);  // batches of 6, 6, 6, 2
  EXPECT_TRUE(m->is_training());
  auto want = adabn_reference(x, 6, [&](const torch::Tensor& imgs) {
    torch::NoGradGuard ng;
    return conv1.forward(imgs);
  });
  EXPECT_LT(adabn_rel_err(bn1.running_mean, want.mean), 1e-4) << bn1.running_mean << "\nwant\n" << want.mean;
  EXPECT_LT(adabn_rel_err(bn1.running_var, want.var), 1e-4) << bn1.running_var << "\nwant\n" << want.var;
  for (auto& kv : m->named_modules())
    if (auto* b = dynamic_cast<torch::nn::BatchNorm2dImpl*>(kv.value().get())) {
      EXPECT_EQ(b->num_batches_tracked.item<int64_t>(), 4) << kv.key();
      EXPECT_LT(b->running_mean.abs().max().item<double>(), 5.0) << kv.key() << " not re-estimated";
      EXPECT_TRUE((b->running_var > 0).all().item<bool>()) << kv.key();
      EXPECT_FALSE(torch::allclose(b->running_var, torch::full_like(b->running_var, 7.0))) << kv.key();
    }
}
