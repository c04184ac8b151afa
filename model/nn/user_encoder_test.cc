#include "model/nn/user_encoder.h"

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

}  // namespace
}  // namespace recsys
