#include "model/nn/user_encoder.h"

#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace recsys {
namespace {

UserEncoder Make() {
  torch::manual_seed(3);
  UserEncoder enc(UserEncoderOptions().dim(8).num_heads(2).ffn_dim(16).max_len(5));
  enc->eval();  // no dropout
  return enc;
}

TEST(UserEncoderTest, ShapesAndParameterNames) {
  UserEncoder enc = UserEncoder(UserEncoderOptions());
  auto params = enc->named_parameters();
  EXPECT_EQ(params["positions.weight"].sizes(), torch::IntArrayRef({10, 64}));
  EXPECT_EQ(params["blocks.1.ffn1.weight"].sizes(), torch::IntArrayRef({256, 64}));
  EXPECT_EQ(params["blocks.0.qkv.weight"].sizes(), torch::IntArrayRef({192, 64}));
  torch::Tensor out = enc->forward(torch::randn({3, 10, 64}),
                                   torch::ones({3, 10}, torch::kBool));
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({3, 10, 64}));
}

TEST(UserEncoderTest, CausalMaskHidesTheFuture) {
  UserEncoder enc = Make();
  torch::Tensor x = torch::randn({1, 5, 8});
  torch::Tensor valid = torch::ones({1, 5}, torch::kBool);
  torch::Tensor a = enc->forward(x, valid);
  torch::Tensor x2 = x.clone();
  x2[0][4] = torch::randn({8}) * 3;  // change the last item only (not a constant shift: LayerNorm would remove it)
  torch::Tensor b = enc->forward(x2, valid);
  EXPECT_TRUE(torch::allclose(a.slice(1, 0, 4), b.slice(1, 0, 4), 1e-5, 1e-5));
  EXPECT_FALSE(torch::allclose(a[0][4], b[0][4], 1e-3, 1e-3));
}

TEST(UserEncoderTest, PaddingDoesNotLeakIntoValidPositions) {
  UserEncoder enc = Make();
  torch::Tensor x = torch::randn({1, 5, 8});
  torch::Tensor valid = torch::tensor({{false, false, true, true, true}});
  torch::Tensor a = enc->forward(x, valid);
  torch::Tensor x2 = x.clone();
  x2[0][0] = torch::randn({8}) * 50;  // garbage in a padded slot
  x2[0][1] = torch::randn({8}) * 50;
  torch::Tensor b = enc->forward(x2, valid);
  EXPECT_TRUE(torch::allclose(a.slice(1, 2, 5), b.slice(1, 2, 5), 1e-5, 1e-5));
  EXPECT_FALSE(torch::isnan(b).any().item<bool>());
  // A shorter (unpadded) input of the same valid items gives the same output:
  // positions count from the right.
  torch::Tensor c = enc->forward(x.slice(1, 2, 5), torch::ones({1, 3}, torch::kBool));
  EXPECT_TRUE(torch::allclose(a.slice(1, 2, 5), c, 1e-5, 1e-5));
}

// Two sequences (2 and 3 items) packed into one row of 5 slots give each
// the outputs it gets alone, left-padded; a third in a row with an empty
// slot too.
TEST(UserEncoderTest, PackedRowsEqualEachSequenceAlone) {
  UserEncoder enc = Make();
  const int64_t L = 5;
  torch::Tensor a = torch::randn({2, 8}), b = torch::randn({3, 8}), c = torch::randn({4, 8});
  auto alone = [&](const torch::Tensor& s) {
    const int64_t n = s.size(0);
    torch::Tensor x = torch::cat({torch::zeros({L - n, 8}), s}).unsqueeze(0);
    torch::Tensor valid = torch::arange(L).ge(L - n).unsqueeze(0);
    return enc->forward(x, valid)[0].slice(0, L - n, L);
  };
  torch::Tensor items = torch::stack({torch::cat({a, b}), torch::cat({c, torch::zeros({1, 8})})});
  torch::Tensor valid = torch::ones({2, L}, torch::kBool);
  valid[1][4] = false;
  torch::Tensor pos = torch::tensor({{3, 4, 2, 3, 4}, {1, 2, 3, 4, 0}}, torch::kLong);
  torch::Tensor allowed = torch::zeros({2, L, L}, torch::kBool);
  auto segment = [&](int64_t row, int64_t from, int64_t n) {
    for (int64_t q = 0; q < n; ++q)
      for (int64_t k = 0; k <= q; ++k) allowed[row][from + q][from + k] = true;
  };
  segment(0, 0, 2);
  segment(0, 2, 3);
  segment(1, 0, 4);
  allowed[1][4][4] = true;  // the empty slot: itself only
  torch::Tensor out = enc->ForwardPacked(items, valid, pos, allowed);
  EXPECT_TRUE(torch::allclose(out[0].slice(0, 0, 2), alone(a), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(out[0].slice(0, 2, 5), alone(b), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(out[1].slice(0, 0, 4), alone(c), 1e-5, 1e-5));
  EXPECT_FALSE(torch::isnan(out).any().item<bool>());
  // Without the segment mask the second sequence would see the first.
  torch::Tensor leaky = enc->ForwardPacked(items, valid, pos,
                                           torch::ones({L, L}, torch::kBool).tril().expand({2, L, L}));
  EXPECT_FALSE(torch::allclose(leaky[0].slice(0, 2, 5), alone(b), 1e-3, 1e-3));
}

TEST(UserEncoderTest, PackedRejectsMismatchedShapes) {
  UserEncoder enc = Make();
  torch::Tensor items = torch::randn({1, 5, 8});
  torch::Tensor valid = torch::ones({1, 5}, torch::kBool);
  EXPECT_THROW(enc->ForwardPacked(items, valid, torch::zeros({1, 4}, torch::kLong),
                                  torch::ones({1, 5, 5}, torch::kBool)),
               c10::Error);
  EXPECT_THROW(enc->ForwardPacked(items, valid, torch::zeros({1, 5}, torch::kLong),
                                  torch::ones({1, 5, 4}, torch::kBool)),
               c10::Error);
}

// Training with keyed dropout: rows [0, 2) and [2, 5) run apart (as two
// step shards on two threads would) equal the five rows run together, and
// the masks are really on (another key gives other outputs).
TEST(UserEncoderTest, KeyedDropoutRowShardsEqualTheWholeBatch) {
  torch::manual_seed(5);
  UserEncoder enc(UserEncoderOptions().dim(8).num_heads(2).ffn_dim(16).max_len(4).dropout(0.3));
  enc->train();
  const int64_t R = 5, L = 4;
  torch::Tensor items = torch::randn({R, L, 8});
  torch::Tensor valid = torch::ones({R, L}, torch::kBool);
  torch::Tensor pos = torch::arange(L).repeat({R, 1});
  torch::Tensor allowed = torch::ones({L, L}, torch::kBool).tril().expand({R, L, L}).contiguous();
  const DropoutKey key{99, 0};
  torch::Tensor whole = enc->ForwardPacked(items, valid, pos, allowed, &key);
  std::vector<torch::Tensor> parts;
  for (auto [from, n] : {std::pair<int64_t, int64_t>{0, 2}, {2, 3}}) {
    const DropoutKey shard{99, from};
    parts.push_back(enc->ForwardPacked(items.narrow(0, from, n), valid.narrow(0, from, n),
                                       pos.narrow(0, from, n), allowed.narrow(0, from, n), &shard));
  }
  EXPECT_TRUE(torch::allclose(torch::cat(parts), whole, 1e-6, 1e-6));
  const DropoutKey other{100, 0};
  EXPECT_FALSE(torch::allclose(enc->ForwardPacked(items, valid, pos, allowed, &other), whole,
                               1e-3, 1e-3));
  enc->eval();  // no dropout: the key is ignored
  torch::Tensor a = enc->ForwardPacked(items, valid, pos, allowed, &key);
  torch::Tensor b = enc->ForwardPacked(items, valid, pos, allowed, &other);
  EXPECT_TRUE(torch::equal(a, b));
}

}  // namespace
}  // namespace recsys
