#include "model/nn/fused_block.h"

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "model/nn/grad_sinks.h"
#include "model/nn/user_encoder.h"

namespace recsys {
namespace {

// A packed batch as the trainer builds it: rows of L slots holding
// sequences of random lengths one after another, an empty slot attending
// to itself only.
struct Packed {
  torch::Tensor items, valid, positions, allowed;
};

Packed MakePacked(int64_t rows, int64_t L, int64_t dim, uint32_t seed) {
  std::mt19937 gen(seed);
  Packed p;
  p.items = torch::randn({rows, L, dim});
  p.valid = torch::zeros({rows, L}, torch::kBool);
  p.positions = torch::zeros({rows, L}, torch::kLong);
  p.allowed = torch::zeros({rows, L, L}, torch::kBool);
  auto valid = p.valid.accessor<bool, 2>();
  auto pos = p.positions.accessor<int64_t, 2>();
  auto allowed = p.allowed.accessor<bool, 3>();
  for (int64_t r = 0; r < rows; ++r) {
    int64_t slot = 0;
    while (slot < L) {
      const int64_t n = std::uniform_int_distribution<int64_t>(1, L)(gen);
      if (slot + n > L || gen() % 5 == 0) {  // leave the rest of the row empty
        for (; slot < L; ++slot) allowed[r][slot][slot] = true;
        break;
      }
      for (int64_t q = 0; q < n; ++q) {
        valid[r][slot + q] = true;
        pos[r][slot + q] = L - n + q;
        for (int64_t k = 0; k <= q; ++k) allowed[r][slot + q][slot + k] = true;
      }
      slot += n;
    }
  }
  return p;
}

// Two encoders with the same weights (every parameter moved off its initial
// value, so LayerNorm weights and biases are not 1 and 0), one fused.
std::pair<UserEncoder, UserEncoder> MakePair(const UserEncoderOptions& o) {
  torch::manual_seed(11);
  UserEncoder fused(UserEncoderOptions(o).fused_cpu_training(true));
  torch::manual_seed(11);
  UserEncoder plain(UserEncoderOptions(o).fused_cpu_training(false));
  torch::NoGradGuard no_grad;
  auto a = fused->parameters(), b = plain->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    a[i].add_(torch::randn_like(a[i]) * 0.1);
    b[i].copy_(a[i]);
  }
  fused->train();
  plain->train();
  return {fused, plain};
}

float MaxAbs(const torch::Tensor& t) { return t.abs().max().item<float>(); }

// Forward outputs and every gradient (input and parameters) of the fused
// blocks equal LibTorch's ops through autograd.
void ExpectFusedEqualsPlain(double dropout, int64_t rows, uint32_t seed) {
  const UserEncoderOptions o = UserEncoderOptions().dropout(dropout);  // d 64, 2 heads, FFN 256, L 10
  auto [fused, plain] = MakePair(o);
  const Packed p = MakePacked(rows, o.max_len(), o.dim(), seed);
  const DropoutKey key{0x5EED0000u + seed, 7};
  torch::Tensor x1 = p.items.clone().requires_grad_(true);
  torch::Tensor x2 = p.items.clone().requires_grad_(true);
  torch::Tensor out1 = fused->ForwardPacked(x1, p.valid, p.positions, p.allowed, &key);
  torch::Tensor out2 = plain->ForwardPacked(x2, p.valid, p.positions, p.allowed, &key);
  ASSERT_TRUE(out1.grad_fn() != nullptr);
  // The last op of the fused encoder is the fused block's own node.
  EXPECT_NE(out1.grad_fn()->name().find("FusedBlockFunction"), std::string::npos)
      << out1.grad_fn()->name();
  EXPECT_EQ(out2.grad_fn()->name().find("FusedBlockFunction"), std::string::npos);
  EXPECT_LT(MaxAbs(out1 - out2), 2e-5f) << "forward, dropout " << dropout;
  ASSERT_FALSE(torch::isnan(out1).any().item<bool>());

  torch::Tensor upstream = torch::randn_like(out1);
  (out1 * upstream).sum().backward();
  (out2 * upstream).sum().backward();
  const float scale_x = std::max(1.0f, MaxAbs(x2.grad()));
  EXPECT_LT(MaxAbs(x1.grad() - x2.grad()) / scale_x, 1e-5f) << "d items";
  auto named1 = fused->named_parameters(), named2 = plain->named_parameters();
  for (const auto& item : named2) {
    const torch::Tensor& g2 = item.value().grad();
    const torch::Tensor& g1 = named1[item.key()].grad();
    ASSERT_TRUE(g1.defined() && g2.defined()) << item.key();
    const float scale = std::max(1.0f, MaxAbs(g2));
    EXPECT_LT(MaxAbs(g1 - g2) / scale, 1e-5f) << item.key() << ", dropout " << dropout;
  }
}

TEST(FusedBlockTest, GradientsEqualAutogradWithDropout) { ExpectFusedEqualsPlain(0.2, 13, 1); }

TEST(FusedBlockTest, GradientsEqualAutogradWithoutDropout) { ExpectFusedEqualsPlain(0.0, 7, 2); }

TEST(FusedBlockTest, OneRowAndManyRows) {
  ExpectFusedEqualsPlain(0.5, 1, 3);
  ExpectFusedEqualsPlain(0.1, 64, 4);
}

// Row shards (as a split step runs them) give the whole batch's outputs and,
// summed, its weight gradients.
TEST(FusedBlockTest, RowShardsEqualTheWholeBatch) {
  const UserEncoderOptions o = UserEncoderOptions().dropout(0.3);
  auto [whole, shards] = MakePair(o);
  const Packed p = MakePacked(9, o.max_len(), o.dim(), 5);
  const DropoutKey key{42, 0};
  torch::Tensor upstream = torch::randn({9, o.max_len(), o.dim()});
  torch::Tensor all = whole->ForwardPacked(p.items, p.valid, p.positions, p.allowed, &key);
  (all * upstream).sum().backward();
  std::vector<torch::Tensor> parts;
  for (auto [from, n] : {std::pair<int64_t, int64_t>{0, 4}, {4, 5}}) {
    const DropoutKey shard{42, from};
    torch::Tensor out =
        shards->ForwardPacked(p.items.narrow(0, from, n), p.valid.narrow(0, from, n),
                              p.positions.narrow(0, from, n), p.allowed.narrow(0, from, n),
                              &shard);
    (out * upstream.narrow(0, from, n)).sum().backward();
    parts.push_back(out.detach());
  }
  EXPECT_LT(MaxAbs(torch::cat(parts) - all), 1e-5f);  // sgemm blocks rows differently
  auto a = whole->parameters(), b = shards->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_LT(MaxAbs(a[i].grad() - b[i].grad()) / std::max(1.0f, MaxAbs(a[i].grad())), 1e-5f)
        << i;
  }
}

// With sinks set on the thread (grad_sinks.h), the fused blocks' weights
// leave the graph and their gradients are added into the sinks: the bits
// autograd would have left in .grad. The encoder's other parameters keep
// their autograd gradients. With a sink missing, everything is autograd's.
TEST(FusedBlockTest, WeightGradientsGoToTheThreadsSinks) {
  const UserEncoderOptions o = UserEncoderOptions().dropout(0.2);
  UserEncoder ref = MakePair(o).first, sunk = MakePair(o).first, partial = MakePair(o).first;
  const Packed p = MakePacked(11, o.max_len(), o.dim(), 6);
  const DropoutKey key{77, 0};
  const torch::Tensor upstream = torch::randn({11, o.max_len(), o.dim()});
  auto run = [&](UserEncoder& e) {
    (e->ForwardPacked(p.items.clone().requires_grad_(true), p.valid, p.positions, p.allowed,
                      &key) * upstream).sum().backward();
  };
  run(ref);
  GradSinks sinks, some;
  std::vector<torch::Tensor> sink_of;
  for (const torch::Tensor& w : sunk->parameters()) {
    sink_of.push_back(torch::zeros_like(w));
    sinks.Add(w, sink_of.back());
  }
  some.Add(partial->parameters()[0], torch::zeros_like(partial->parameters()[0]));
  {
    const ScopedGradSinks scope(&sinks);
    run(sunk);
  }
  {
    const ScopedGradSinks scope(&some);
    run(partial);
  }
  const auto want = ref->named_parameters(), got = sunk->named_parameters(),
             fallback = partial->named_parameters();
  int sunk_count = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const std::string& name = want[i].key();
    const torch::Tensor& grad = got[i].value().grad();
    if (!grad.defined()) {
      ++sunk_count;
      EXPECT_TRUE(torch::equal(sink_of[i], want[i].value().grad())) << name;
    } else {
      EXPECT_TRUE(torch::equal(grad, want[i].value().grad())) << name;
      EXPECT_EQ(sink_of[i].count_nonzero().item<int64_t>(), 0) << name;
    }
    EXPECT_TRUE(torch::equal(fallback[i].value().grad(), want[i].value().grad())) << name;
  }
  EXPECT_EQ(sunk_count, 2 * 12) << "every weight of both blocks";
}

TEST(FusedBlockTest, AppliesOnlyToFloatCpuTensors) {
  const UserEncoderOptions o = UserEncoderOptions().dim(8).ffn_dim(16);
  TransformerBlock block(o);
  auto params = block->named_parameters();
  const FusedBlockWeights w{params["qkv.weight"],  params["qkv.bias"],  params["out.weight"],
                            params["out.bias"],    params["ln1.weight"], params["ln1.bias"],
                            params["ffn1.weight"], params["ffn1.bias"], params["ffn2.weight"],
                            params["ffn2.bias"],   params["ln2.weight"], params["ln2.bias"]};
  torch::Tensor allowed = torch::ones({2, 4, 4}, torch::kBool);
  EXPECT_TRUE(FusedBlockApplies(torch::randn({2, 4, 8}), allowed, w));
  EXPECT_FALSE(FusedBlockApplies(torch::randn({2, 4, 8}, torch::kDouble), allowed, w));
  EXPECT_FALSE(FusedBlockApplies(torch::randn({2, 4, 8}), allowed.to(torch::kFloat), w));
  EXPECT_FALSE(FusedBlockApplies(torch::randn({2, 65, 8}),
                                 torch::ones({2, 65, 65}, torch::kBool), w));
  EXPECT_THROW(FusedBlockForward(torch::randn({2, 4, 8}), torch::ones({2, 4, 3}, torch::kBool),
                                 w, 2, 0.1, DropoutKey{}),
               c10::Error);
}

}  // namespace
}  // namespace recsys
