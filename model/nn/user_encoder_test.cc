#include "model/nn/user_encoder.h"

#include <algorithm>
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

// Random weights (every parameter, LayerNorms and biases too, moved off its
// initial value by N(0, noise)), left-padded histories of every length
// 1..max_len with garbage in the padded slots, batch sizes 1..33.
struct LastPositionDifference {
  float max_abs_difference = 0;
  float max_abs_output = 0;
};

LastPositionDifference CompareWithForward(int64_t num_layers, double noise,
                                          bool inference_mode, uint64_t seed) {
  torch::manual_seed(seed);
  const UserEncoderOptions o = UserEncoderOptions().num_layers(num_layers);  // serving's shape
  UserEncoder enc(o);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : enc->parameters()) p.add_(torch::randn_like(p) * noise);
  }
  enc->eval();
  const int64_t L = o.max_len();
  LastPositionDifference worst;
  for (int64_t b = 1; b <= 33; ++b) {
    torch::Tensor items = torch::randn({b, L, o.dim()});
    torch::Tensor len = (torch::arange(b) % L) + 1;  // 1..L, each several times
    len = len.index_select(0, torch::randperm(b));
    torch::Tensor valid = torch::arange(L).unsqueeze(0).ge(L - len.unsqueeze(1));
    torch::Tensor full, last;
    if (inference_mode) {
      torch::InferenceMode guard;
      full = enc->forward(items, valid).select(1, L - 1).clone();
      last = enc->ForwardLast(items, valid).clone();
    } else {
      torch::NoGradGuard guard;
      full = enc->forward(items, valid).select(1, L - 1);
      last = enc->ForwardLast(items, valid);
    }
    EXPECT_EQ(last.sizes(), torch::IntArrayRef({b, o.dim()}));
    EXPECT_FALSE(torch::isnan(last).any().item<bool>());
    worst.max_abs_difference =
        std::max(worst.max_abs_difference, (full - last).abs().max().item<float>());
    worst.max_abs_output = std::max(worst.max_abs_output, full.abs().max().item<float>());
  }
  return worst;
}

TEST(UserEncoderTest, ForwardLastEqualsForwardAtTheLastPosition) {
  for (int64_t layers : {1, 2, 3}) {
    for (bool inference_mode : {false, true}) {
      SCOPED_TRACE(::testing::Message() << layers << " layers, InferenceMode " << inference_mode);
      // 1e-6 of the largest output (|out| reaches 3-4 after the LayerNorm):
      // the last block's matmuls have B rows instead of B * L and OpenBLAS
      // rounds them differently. Measured: up to 1.2e-6 with weights near
      // their initial scale, 2.4e-6 with larger ones (~5-10 float ulps).
      for (double noise : {0.05, 0.2}) {
        LastPositionDifference d = CompareWithForward(layers, noise, inference_mode, 11 + layers);
        EXPECT_LE(d.max_abs_difference, 1e-6 * std::max(1.0f, d.max_abs_output)) << noise;
      }
    }
  }
}

// A window shorter than max_len (positions still count from the right), a
// single-item history, and a sequence that changes only in an earlier item.
TEST(UserEncoderTest, ForwardLastShortWindowAndEarlierItemsMatter) {
  UserEncoder enc = Make();
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::randn({4, 3, 8});
  torch::Tensor valid = torch::tensor({{true, true, true}, {false, true, true},
                                       {false, false, true}, {true, true, true}});
  torch::Tensor full = enc->forward(x, valid).select(1, 2);
  EXPECT_LE((enc->ForwardLast(x, valid) - full).abs().max().item<float>(), 1e-6);
  torch::Tensor x2 = x.clone();
  x2[3][0] = torch::randn({8}) * 3;
  torch::Tensor changed = enc->ForwardLast(x2, valid);
  EXPECT_FALSE(torch::allclose(changed[3], full[3], 1e-3, 1e-3));
  EXPECT_TRUE(torch::equal(changed.slice(0, 0, 3), enc->ForwardLast(x, valid).slice(0, 0, 3)));
  EXPECT_THROW(enc->ForwardLast(torch::randn({1, 6, 8}), torch::ones({1, 6}, torch::kBool)),
               c10::Error);
}

}  // namespace
}  // namespace recsys
