// Gradient reversal (exact backward), the lambda schedule, the domain discriminator, and the DANN
// loss: value against an explicit-loop BCE, finite-difference gradients, and a discriminator that
// learns to separate separable domains.
#include <gtest/gtest.h>

#include <cmath>

#include "losses/dann.h"
#include "losses/grl.h"
#include "support/testing.h"

using namespace shiftlab;
using namespace shiftlab::losses;

TEST(Grl, ForwardIsIdentityBackwardIsMinusLambdaTimesUpstream) {
  torch::manual_seed(0);
  for (double lambda : {0.0, 0.37, 1.0, 2.5}) {
    auto x = torch::randn({5, 7}, torch::kDouble).set_requires_grad(true);
    auto y = grad_reverse(x, lambda);
    EXPECT_TRUE(torch::equal(y.detach(), x.detach()));
    auto up = torch::randn({5, 7}, torch::kDouble);
    y.backward(up);
    EXPECT_TRUE(torch::equal(x.grad(), up * (-lambda))) << "lambda " << lambda;
  }
  // float32 too, and through a downstream function: grad = -lambda * d(sum(y^2))/dy = -lambda * 2y
  auto x = torch::randn({4}, torch::kFloat).set_requires_grad(true);
  auto y = grad_reverse(x, 0.5);
  (y * y).sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), (2 * x.detach()) * (-0.5)));
}

TEST(Grl, GaninScheduleValues) {
  EXPECT_DOUBLE_EQ(dann_lambda(0.0), 0.0);
  EXPECT_DOUBLE_EQ(dann_lambda(1.0), 2.0 / (1.0 + std::exp(-10.0)) - 1.0);
  EXPECT_NEAR(dann_lambda(0.5), 2.0 / (1.0 + std::exp(-5.0)) - 1.0, 1e-15);
  EXPECT_NEAR(dann_lambda(0.1, 20), 2.0 / (1.0 + std::exp(-2.0)) - 1.0, 1e-15);
  EXPECT_DOUBLE_EQ(dann_lambda(-1.0), 0.0);                // clamped to [0, 1]
  EXPECT_DOUBLE_EQ(dann_lambda(3.0), dann_lambda(1.0));
  for (double p = 0; p < 1; p += 0.05) EXPECT_LT(dann_lambda(p), dann_lambda(p + 0.05));
  AdversarialOptions o;
  o.max_lambda = 0.3;
  EXPECT_NEAR(adversarial_lambda(o, 1.0), 0.3 * (2.0 / (1.0 + std::exp(-10.0)) - 1.0), 1e-15);
  o.schedule = "constant";
  EXPECT_DOUBLE_EQ(adversarial_lambda(o, 0.0), 0.3);
}

TEST(DomainDiscriminator, TLlibLayoutAndOutputShape) {
  DomainDiscriminator d(6, 8, 2, true);
  auto names = d->named_parameters().keys();
  // Linear-BN-ReLU, Linear-BN-ReLU, Linear
  std::vector<std::string> want{"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
                                "layers.3.weight", "layers.3.bias", "layers.4.weight", "layers.4.bias",
                                "layers.6.weight", "layers.6.bias"};
  EXPECT_EQ(names, want);
  EXPECT_EQ(d->forward(torch::randn({5, 6})).sizes(), (std::vector<int64_t>{5}));
  DomainDiscriminator nobn(6, 8, 3, false);  // Linear-ReLU-Dropout ×3, Linear
  EXPECT_EQ(nobn->named_parameters().size(), 8u);
  EXPECT_EQ(nobn->layers->size(), 10u);
  EXPECT_THROW(DomainDiscriminator(0, 8, 2, true), core::UsageError);
}

static StepOutputs step_outputs(int64_t ns, int64_t nt, int64_t d, double shift, torch::Dtype dt = torch::kDouble) {
  StepOutputs o;
  o.f_s = torch::randn({ns, d}, dt) + shift;
  o.f_t = torch::randn({nt, d}, dt) - shift;
  o.logits_s = torch::randn({ns, 3}, dt);
  o.logits_t = torch::randn({nt, 3}, dt);
  o.labels_s = torch::randint(0, 3, {ns}, torch::kLong);
  return o;
}

TEST(Dann, ValueMatchesExplicitBceAndTermsAreLogged) {
  torch::manual_seed(1);
  AdversarialOptions ao;
  ao.hidden = 8;
  DannMethod m(ao, 4);
  m.to(torch::kDouble);
  auto out = step_outputs(5, 7, 4, 0.5);  // unequal batch sizes
  out.progress = 0.3;
  auto r = m.loss(out);
  // Reference: the same discriminator applied to the concatenated batch, then BCE written as loops.
  auto d = m.discriminator->forward(torch::cat({out.f_s, out.f_t})).detach();
  double ls = 0, lt = 0, acc_s = 0, acc_t = 0;
  for (int i = 0; i < 5; ++i) {
    double z = d[i].item<double>();
    ls += -std::log(1.0 / (1.0 + std::exp(-z)));  // -log sigmoid(z), label 1
    acc_s += z >= 0;
  }
  for (int j = 5; j < 12; ++j) {
    double z = d[j].item<double>();
    lt += -std::log(1.0 - 1.0 / (1.0 + std::exp(-z)));  // -log(1 - sigmoid(z)), label 0
    acc_t += z < 0;
  }
  double want = 0.5 * (ls / 5 + lt / 7);
  EXPECT_NEAR(r.total.item<double>(), want, 1e-12);
  ASSERT_EQ(r.terms.size(), 3u);
  EXPECT_EQ(r.terms[0].first, "dann");
  EXPECT_EQ(r.terms[1].first, "dann_acc");
  EXPECT_EQ(r.terms[2].first, "lambda");
  EXPECT_NEAR(r.terms[0].second.item<double>(), want, 1e-12);
  EXPECT_NEAR(r.terms[1].second.item<double>(), 0.5 * (acc_s / 5 + acc_t / 7), 1e-12);
  EXPECT_NEAR(r.terms[2].second.item<double>(), dann_lambda(0.3), 1e-15);
  for (auto& [n, t] : r.terms) EXPECT_FALSE(t.requires_grad()) << n;
}

TEST(Dann, FeatureGradientIsReversedAndScaledByLambda) {
  torch::manual_seed(2);
  AdversarialOptions ao;
  ao.hidden = 6;
  DannMethod m(ao, 3);
  m.to(torch::kDouble);
  auto out = step_outputs(4, 4, 3, 0.3);
  out.f_s.set_requires_grad(true);
  out.f_t.set_requires_grad(true);
  out.progress = 0.6;
  m.loss(out).total.backward();
  auto g_rev = out.f_s.grad().clone();
  // the same loss with a "reversal" of -1 (constant schedule) gives the true derivative
  AdversarialOptions plain = ao;
  plain.schedule = "constant";
  plain.max_lambda = -1;
  DannMethod m2(plain, 3);
  m2.to(torch::kDouble);
  torch::NoGradGuard ng;
  for (auto& kv : m.named_parameters()) m2.named_parameters()[kv.key()].copy_(kv.value());
  out.f_s.mutable_grad() = torch::Tensor();
  {
    torch::AutoGradMode on(true);
    m2.loss(out).total.backward();
  }
  EXPECT_TRUE(torch::allclose(g_rev, out.f_s.grad() * (-dann_lambda(0.6)), 1e-12, 1e-14));
}

TEST(Dann, FiniteDifferenceGradient) {
  torch::manual_seed(3);
  AdversarialOptions ao;
  ao.hidden = 5;
  ao.schedule = "constant";
  ao.max_lambda = -1;  // GRL multiplies by +1: autograd then equals the plain derivative
  auto m = std::make_shared<DannMethod>(ao, 3);
  m->to(torch::kDouble);
  auto out = step_outputs(4, 3, 3, 0.2);
  auto f = [&](const std::vector<torch::Tensor>& in) {
    StepOutputs o = out;
    o.f_s = in[0];
    o.f_t = in[1];
    return m->loss(o).total;
  };
  auto res = testutil::gradcheck(f, {out.f_s.set_requires_grad(true), out.f_t.set_requires_grad(true)});
  EXPECT_GRADCHECK(res, 1e-6);
  // and w.r.t. the discriminator's parameters through the same function (BN in train mode)
  auto w0 = m->discriminator->layers[0]->as<torch::nn::Linear>()->weight;
  auto g = [&](const std::vector<torch::Tensor>& in) {
    torch::NoGradGuard ng;
    w0.copy_(in[0]);
    return m->loss(out).total;
  };
  // finite differences by hand on a few weights
  auto base = w0.detach().clone();
  m->zero_grad();
  m->loss(out).total.backward();
  auto ana = w0.grad().clone();
  for (int k = 0; k < 4; ++k) {
    auto plus = base.clone(), minus = base.clone();
    plus[k % 5][k % 3] += 1e-6;
    minus[k % 5][k % 3] -= 1e-6;
    double num = (g({plus}).item<double>() - g({minus}).item<double>()) / 2e-6;
    EXPECT_NEAR(num, ana[k % 5][k % 3].item<double>(), 1e-7);
  }
}

TEST(Dann, DiscriminatorLearnsSeparableDomains) {
  torch::manual_seed(4);
  AdversarialOptions ao;
  ao.hidden = 16;
  DannMethod m(ao, 4);
  torch::optim::Adam opt(m.parameters(), torch::optim::AdamOptions(1e-2));
  auto acc_at = [&](int64_t seed) {
    torch::manual_seed(seed);
    auto out = step_outputs(32, 32, 4, 1.5, torch::kFloat);
    torch::NoGradGuard ng;
    m.eval();
    auto r = m.loss(out);
    m.train();
    return r.terms[1].second.item<double>();
  };
  double before = acc_at(100);
  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < 40; ++step) {
    auto out = step_outputs(32, 32, 4, 1.5, torch::kFloat);
    out.progress = 0.5;
    auto r = m.loss(out);
    opt.zero_grad();
    r.total.backward();
    opt.step();
    if (step == 0) first_loss = r.total.item<double>();
    last_loss = r.total.item<double>();
  }
  double after = acc_at(101);
  EXPECT_GT(after, 0.95);
  EXPECT_GT(after, before + 0.2) << "before " << before;
  EXPECT_LT(last_loss, first_loss * 0.5);
}
