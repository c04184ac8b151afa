#include "trainer/training/loss.h"

#include <cmath>

#include "gtest/gtest.h"

namespace recsys {
namespace {

TEST(LossTest, HandComputedExample) {
  // Two queries, three candidates, d = 2.
  torch::Tensor q = torch::tensor({{1.0f, 0.0f}, {0.0f, 2.0f}});
  torch::Tensor e = torch::tensor({{1.0f, 1.0f}, {2.0f, 0.0f}, {0.0f, 1.0f}});
  // logits: q0 -> [1, 2, 0]; q1 -> [2, 0, 2].
  torch::Tensor t = torch::tensor({0, 2}, torch::kLong);
  const double l0 = -1 + std::log(std::exp(1) + std::exp(2) + std::exp(0));
  const double l1 = -2 + std::log(std::exp(2) + std::exp(0) + std::exp(2));
  EXPECT_NEAR(InBatchSoftmaxLoss(q, e, t, {}, {}).item<double>(), (l0 + l1) / 2, 1e-5);

  // Log-popularity correction: p = [0.5, 0.25, 0.25].
  torch::Tensor lp = torch::log(torch::tensor({0.5f, 0.25f, 0.25f}));
  // q0 -> [1 - ln .5, 2 - ln .25, -ln .25]; q1 -> [2 - ln .5, -ln .25, 2 - ln .25].
  auto lse = [](std::vector<double> v) {
    double s = 0;
    for (double x : v) s += std::exp(x);
    return std::log(s);
  };
  const double a = std::log(0.5), b = std::log(0.25);
  const double c0 = -(1 - a) + lse({1 - a, 2 - b, -b});
  const double c1 = -(2 - b) + lse({2 - a, -b, 2 - b});
  EXPECT_NEAR(InBatchSoftmaxLoss(q, e, t, lp, {}).item<double>(), (c0 + c1) / 2, 1e-5);

  // Query 0's user owns candidate 1 (masked) and its target 0 (kept);
  // query 1's user owns candidate 0 (masked).
  torch::Tensor ex = torch::tensor({{true, true, false}, {true, false, false}});
  const double m0 = -1 + lse({1, 0});
  const double m1 = -2 + lse({0, 2});
  EXPECT_NEAR(InBatchSoftmaxLoss(q, e, t, {}, ex).item<double>(), (m0 + m1) / 2, 1e-5);
}

TEST(LossTest, GradientPushesTargetUp) {
  torch::Tensor q = torch::randn({4, 3}, torch::requires_grad());
  torch::Tensor e = torch::randn({5, 3});
  torch::Tensor t = torch::tensor({0, 1, 2, 3}, torch::kLong);
  torch::Tensor loss = InBatchSoftmaxLoss(q, e, t, {}, {});
  loss.backward();
  torch::Tensor q2 = (q - 0.1 * q.grad()).detach();
  EXPECT_LT(InBatchSoftmaxLoss(q2, e, t, {}, {}).item<float>(), loss.item<float>());
}

}  // namespace
}  // namespace recsys
