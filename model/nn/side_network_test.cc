#include "model/nn/side_network.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace recsys {
namespace {

void ZeroBlocks(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.named_parameters()) {
    if (p.key().find("blocks.") != std::string::npos) p.value().zero_();
  }
}

TEST(SideNetworkTest, GateStartsAtOneHalfAndSharpensWithTemperature) {
  Gate gate;
  EXPECT_FLOAT_EQ(gate->forward().item<float>(), 0.5f);
  {
    torch::NoGradGuard no_grad;
    gate->weight.fill_(0.1);
  }
  // sigmoid(0.1 / 0.1) = sigmoid(1).
  EXPECT_NEAR(gate->forward().item<float>(), 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
}

TEST(SideNetworkTest, SideBlockShapeAndResidual) {
  torch::manual_seed(0);
  SideBlock block(SideBlockOptions(768).bottleneck(64));
  torch::Tensor x = torch::randn({5, 768});
  torch::Tensor y = block->forward(x);
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({5, 768}));
  auto params = block->named_parameters();
  EXPECT_EQ(params["down.weight"].sizes(), torch::IntArrayRef({64, 768}));
  EXPECT_EQ(params["up.weight"].sizes(), torch::IntArrayRef({768, 64}));
  ZeroBlocks(*block);  // no "blocks." prefix here: zero by hand
  {
    torch::NoGradGuard no_grad;
    params["up.weight"].zero_();
    params["up.bias"].zero_();
  }
  EXPECT_TRUE(torch::allclose(block->forward(x), x));  // pure residual
}

TEST(SideNetworkTest, IntraPathFollowsTheGatedRecurrence) {
  // With identity blocks and g = 1/2: s1 = h0/2, s2 = h1/2 + h0/4,
  // s3 = h2/2 + h1/4 + h0/8.
  IntraModalPath path(IntraModalPathOptions(3, 4).bottleneck(2));
  ZeroBlocks(*path);
  torch::Tensor h = torch::randn({2, 3, 4});
  torch::Tensor expected = h.select(1, 2) / 2 + h.select(1, 1) / 4 + h.select(1, 0) / 8;
  EXPECT_TRUE(torch::allclose(path->forward(h), expected, 1e-5, 1e-6));
  EXPECT_THROW(path->forward(torch::randn({2, 4, 4})), c10::Error);
}

TEST(SideNetworkTest, InterPathAccumulatesAndAligns) {
  // Equal widths, identity blocks, g = 1/2: m_i = m_{i-1} + (img_i + txt_i)/2.
  InterModalPath path(InterModalPathOptions(2, 4, 4).bottleneck(2));
  ZeroBlocks(*path);
  torch::Tensor t = torch::randn({3, 2, 4}), v = torch::randn({3, 2, 4});
  torch::Tensor expected = (t.sum(1) + v.sum(1)) / 2;
  EXPECT_TRUE(torch::allclose(path->forward(t, v), expected, 1e-5, 1e-6));

  // IISAN-Versa: text 8 wide, image 4 wide -> one Linear(8 -> 4) per block.
  InterModalPath versa(InterModalPathOptions(2, 8, 4).bottleneck(2));
  auto params = versa->named_parameters();
  EXPECT_EQ(params["align.0.weight"].sizes(), torch::IntArrayRef({4, 8}));
  EXPECT_EQ(params["align.1.weight"].sizes(), torch::IntArrayRef({4, 8}));
  EXPECT_EQ(versa->forward(torch::randn({3, 2, 8}), v).sizes(),
            torch::IntArrayRef({3, 4}));
}

TEST(SideNetworkTest, ItemEncoderForEachModalitySubset) {
  IisanItemEncoderOptions both;
  both.modalities = {{"text", 7, 32}, {"image", 7, 16}};
  both.bottleneck = 8;
  both.embedding_dim = 6;
  IisanItemEncoder enc(both);
  EXPECT_TRUE(enc->has_inter_path());
  torch::Tensor out = enc->forward({torch::randn({5, 7, 32}), torch::randn({5, 7, 16})});
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({5, 6}));
  std::set<std::string> names;
  for (auto& p : enc->named_parameters()) names.insert(p.key());
  EXPECT_TRUE(names.count("intra_text.blocks.6.down.weight"));
  EXPECT_TRUE(names.count("intra_image.gates.0.weight"));
  EXPECT_TRUE(names.count("inter.align.6.weight"));
  EXPECT_TRUE(names.count("head_inter.weight"));
  EXPECT_EQ(enc->named_parameters()["fuse.weight"].sizes(), torch::IntArrayRef({6, 18}));

  IisanItemEncoderOptions image_only = both;
  image_only.modalities = {{"image", 3, 16}};
  IisanItemEncoder img(image_only);
  EXPECT_FALSE(img->has_inter_path());
  EXPECT_EQ(img->forward({torch::randn({2, 3, 16})}).sizes(), torch::IntArrayRef({2, 6}));

  IisanItemEncoderOptions unequal = both;
  unequal.modalities = {{"text", 7, 32}, {"image", 5, 16}};
  EXPECT_THROW(IisanItemEncoder{unequal}, c10::Error);
  unequal.inter_path = false;  // both intra paths, no inter path: fine
  EXPECT_FALSE(IisanItemEncoder(unequal)->has_inter_path());
}

TEST(SideNetworkTest, GradientsReachGatesAndBlocks) {
  IisanItemEncoderOptions o;
  o.modalities = {{"text", 2, 8}, {"image", 2, 8}};
  o.bottleneck = 4;
  o.embedding_dim = 4;
  IisanItemEncoder enc(o);
  enc->forward({torch::randn({3, 2, 8}), torch::randn({3, 2, 8})}).pow(2).sum().backward();
  for (auto& p : enc->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<float>(), 0) << p.key();
  }
}

}  // namespace
}  // namespace recsys
