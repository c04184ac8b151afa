#include "model/nn/fused_intra_path.h"

#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "model/nn/grad_sinks.h"
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
// With sinks set on the thread (grad_sinks.h), the down and up layers'
// weights and biases leave the graph and their gradients are added into
// the sinks: the bits autograd would have left in .grad. The gates keep
// theirs (they keep the node in the graph: the states need no gradient).
TEST(FusedIntraPathTest, LayerGradientsGoToTheThreadsSinks) {
  IntraModalPath ref = MakePair(3, 32, 8).first, sunk = MakePair(3, 32, 8).first;
  const torch::Tensor h = torch::randn({29, 3, 32});
  const torch::Tensor upstream = torch::randn({29, 32});
  (ref->forward(h) * upstream).sum().backward();
  GradSinks sinks;
  std::vector<torch::Tensor> sink_of;
  for (const torch::Tensor& w : sunk->parameters()) {
    sink_of.push_back(torch::zeros_like(w));
    sinks.Add(w, sink_of.back());
  }
  {
    const ScopedGradSinks scope(&sinks);
    (sunk->forward(h) * upstream).sum().backward();
  }
  const auto want = ref->named_parameters(), got = sunk->named_parameters();
  int gates = 0, sunk_count = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const std::string& name = want[i].key();
    if (got[i].value().grad().defined()) {
      ++gates;
      EXPECT_TRUE(torch::equal(got[i].value().grad(), want[i].value().grad())) << name;
      EXPECT_EQ(sink_of[i].count_nonzero().item<int64_t>(), 0) << name;
    } else {
      ++sunk_count;
      EXPECT_TRUE(torch::equal(sink_of[i], want[i].value().grad())) << name;
    }
  }
  EXPECT_EQ(gates, 3);
  EXPECT_EQ(sunk_count, 3 * 4);
  // Outside grad mode (evaluation) the sinks are not used.
  torch::NoGradGuard no_grad;
  const ScopedGradSinks scope(&sinks);
  EXPECT_TRUE(torch::equal(sunk->forward(h), ref->forward(h)));
}

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
