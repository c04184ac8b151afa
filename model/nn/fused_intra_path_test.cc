#include "model/nn/fused_intra_path.h"

#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "model/nn/side_network.h"

namespace recsys {
namespace {

float MaxAbs(const torch::Tensor& t) { return t.abs().max().item<float>(); }

// Two paths with the same weights (moved off their initial values, the
// gates too, so g != 0.5), one fused.
std::pair<IntraModalPath, IntraModalPath> MakePair(int64_t blocks, int64_t dim,
                                                   int64_t bottleneck) {
  const IntraModalPathOptions o = IntraModalPathOptions(blocks, dim).bottleneck(bottleneck);
  torch::manual_seed(21);
  IntraModalPath fused(IntraModalPathOptions(o).fused_cpu_training(true));
  torch::manual_seed(21);
  IntraModalPath plain(IntraModalPathOptions(o).fused_cpu_training(false));
  torch::NoGradGuard no_grad;
  auto a = fused->parameters(), b = plain->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    a[i].add_(torch::randn_like(a[i]) * 0.05);
    b[i].copy_(a[i]);
  }
  return {fused, plain};
}

void ExpectFusedEqualsPlain(int64_t items, int64_t blocks, int64_t dim, int64_t bottleneck,
                            bool states_need_grad) {
  auto [fused, plain] = MakePair(blocks, dim, bottleneck);
  torch::Tensor h = torch::randn({items, blocks, dim});
  torch::Tensor h1 = h.clone().requires_grad_(states_need_grad);
  torch::Tensor h2 = h.clone().requires_grad_(states_need_grad);
  torch::Tensor out1 = fused->forward(h1);
  torch::Tensor out2 = plain->forward(h2);
  ASSERT_TRUE(out1.grad_fn() != nullptr);
  EXPECT_NE(out1.grad_fn()->name().find("FusedIntraPathFunction"), std::string::npos)
      << out1.grad_fn()->name();
  EXPECT_EQ(out2.grad_fn()->name().find("FusedIntraPathFunction"), std::string::npos);
  EXPECT_LT(MaxAbs(out1 - out2) / std::max(1.0f, MaxAbs(out2)), 1e-5f);
  torch::Tensor upstream = torch::randn_like(out1);
  (out1 * upstream).sum().backward();
  (out2 * upstream).sum().backward();
  if (states_need_grad) {
    EXPECT_LT(MaxAbs(h1.grad() - h2.grad()) / std::max(1.0f, MaxAbs(h2.grad())), 1e-5f);
  } else {
    EXPECT_FALSE(h1.grad().defined());
  }
  auto named1 = fused->named_parameters(), named2 = plain->named_parameters();
  for (const auto& item : named2) {
    const torch::Tensor& g2 = item.value().grad();
    const torch::Tensor& g1 = named1[item.key()].grad();
    ASSERT_TRUE(g1.defined() && g2.defined()) << item.key();
    EXPECT_LT(MaxAbs(g1 - g2) / std::max(1.0f, MaxAbs(g2)), 1e-5f) << item.key();
  }
}

// The stand-in BERT cache's shape (4 selected states of 256, bottleneck 64)
// over a step's ~280 items; gradients into the states as well.
TEST(FusedIntraPathTest, GradientsEqualAutograd) { ExpectFusedEqualsPlain(283, 4, 256, 64, false); }

TEST(FusedIntraPathTest, GradientsIntoTheStates) { ExpectFusedEqualsPlain(17, 3, 32, 8, true); }

TEST(FusedIntraPathTest, OneBlockAndOneItem) { ExpectFusedEqualsPlain(1, 1, 16, 4, true); }

// Inference (no grad) and evaluation mode take LibTorch's ops; the outputs
// agree with the fused training path.
TEST(FusedIntraPathTest, OnlyTrainingWithGradientsIsFused) {
  auto [fused, plain] = MakePair(2, 16, 4);
  torch::Tensor h = torch::randn({5, 2, 16});
  torch::Tensor trained = fused->forward(h);
  {
    torch::NoGradGuard no_grad;
    EXPECT_LT(MaxAbs(fused->forward(h) - trained), 1e-6f);
  }
  fused->eval();
  torch::Tensor evaluated = fused->forward(h);
  EXPECT_EQ(evaluated.grad_fn()->name().find("FusedIntraPathFunction"), std::string::npos);
  EXPECT_LT(MaxAbs(evaluated - trained), 1e-6f);
  EXPECT_FALSE(FusedIntraPathApplies(h.to(torch::kDouble), {}));
  EXPECT_THROW(FusedIntraPathForward(h, {}), c10::Error);
}

}  // namespace
}  // namespace recsys
