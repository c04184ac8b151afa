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

// The additive form of the exclusion (what the trainer builds on its batch
// thread) gives the bool mask's loss and gradients bit for bit, with and
// without the popularity correction, for a mean and a sum; a target among
// its user's items stays a candidate.
TEST(LossTest, AdditiveExclusionMaskMatchesTheBoolMaskBitForBit) {
  torch::manual_seed(3);
  const int64_t n = 7, c = 9;
  torch::Tensor e0 = torch::randn({c, 4});
  torch::Tensor q0 = torch::randn({n, 4});
  torch::Tensor t = torch::randint(0, c, {n}, torch::kLong);
  torch::Tensor ex = torch::rand({n, c}) < 0.4;
  ex.index_put_({0, t[0].item<int64_t>()}, true);  // a target the user owns
  torch::Tensor ex_bytes = ex.to(torch::kUInt8).contiguous();
  torch::Tensor additive = torch::empty({n, c}, torch::kFloat);
  for (int64_t i = 0; i < n; ++i) {
    ExclusionMaskRow(ex_bytes.data_ptr<uint8_t>() + i * c, c, t[i].item<int64_t>(),
                     additive.data_ptr<float>() + i * c);
  }
  EXPECT_EQ(additive[0][t[0].item<int64_t>()].item<float>(), 0.0f);
  EXPECT_TRUE(torch::isinf(additive).sum().item<int64_t>() > 0);
  torch::Tensor lp = torch::log_softmax(torch::randn({c}), 0);
  for (const torch::Tensor& prior : {torch::Tensor(), lp}) {
    for (bool sum : {false, true}) {
      torch::Tensor q1 = q0.clone().requires_grad_(true), e1 = e0.clone().requires_grad_(true);
      torch::Tensor q2 = q0.clone().requires_grad_(true), e2 = e0.clone().requires_grad_(true);
      torch::Tensor l1 = InBatchSoftmaxLoss(q1, e1, t, prior, ex, sum);
      torch::Tensor l2 = InBatchSoftmaxLoss(q2, e2, t, prior, additive, sum);
      ASSERT_TRUE(std::isfinite(l1.item<float>()));
      EXPECT_TRUE(torch::equal(l1, l2)) << l1.item<float>() << " vs " << l2.item<float>();
      l1.backward();
      l2.backward();
      EXPECT_TRUE(torch::equal(q1.grad(), q2.grad()));
      EXPECT_TRUE(torch::equal(e1.grad(), e2.grad()));
    }
  }
  // A mask of the wrong shape is refused, not broadcast.
  EXPECT_THROW(InBatchSoftmaxLoss(q0, e0, t, {}, additive.narrow(0, 0, 1)), c10::Error);
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
