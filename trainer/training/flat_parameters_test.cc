#include "trainer/training/flat_parameters.h"

#include <vector>

#include <gtest/gtest.h>

namespace recsys {
namespace {

// A small module with the shapes that matter: matrices, vectors, a scalar.
struct Net : torch::nn::Module {
  Net() {
    a = register_module("a", torch::nn::Linear(5, 3));
    b = register_module("b", torch::nn::Linear(3, 2));
    g = register_parameter("g", torch::zeros({1}));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return b(torch::relu(a(x))) * torch::sigmoid(g / 0.1);
  }
  torch::nn::Linear a{nullptr}, b{nullptr};
  torch::Tensor g;
};

// Adam over the flat buffer must give bit-for-bit the weights of Adam over
// the tensors one by one, step after step (gradients accumulated in place).
TEST(FlatParametersTest, AdamOverTheBufferEqualsAdamOverEachTensor) {
  torch::manual_seed(3);
  auto plain = std::make_shared<Net>();
  auto flat = std::make_shared<Net>();
  {
    torch::NoGradGuard no_grad;
    auto src = plain->parameters();
    auto dst = flat->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  torch::Tensor buffer = FlattenParameters(flat->parameters());
  EXPECT_EQ(buffer.numel(), 5 * 3 + 3 + 3 * 2 + 2 + 1);
  torch::optim::Adam opt_plain(plain->parameters(), torch::optim::AdamOptions(1e-2).weight_decay(1e-3));
  torch::optim::Adam opt_flat(std::vector<torch::Tensor>{buffer},
                              torch::optim::AdamOptions(1e-2).weight_decay(1e-3));
  for (int step = 0; step < 20; ++step) {
    torch::Tensor x = torch::randn({7, 5});
    for (auto* pair : {&opt_plain, &opt_flat}) {
      Net& net = pair == &opt_plain ? *plain : *flat;
      pair->zero_grad();
      net.forward(x).pow(2).sum().backward();
      pair->step();
    }
  }
  auto p = plain->named_parameters();
  auto f = flat->named_parameters();
  ASSERT_EQ(p.size(), f.size());
  for (const auto& item : p) {
    EXPECT_TRUE(torch::equal(item.value(), f[item.key()])) << item.key();
  }
  // The module's tensors are views of the buffer: writing one shows in it.
  {
    torch::NoGradGuard no_grad;
    flat->g.fill_(0.25f);
  }
  const int64_t offset = flat->g.data_ptr<float>() - buffer.data_ptr<float>();
  ASSERT_GE(offset, 0);
  ASSERT_LT(offset, buffer.numel());
  EXPECT_FLOAT_EQ(buffer[offset].item<float>(), 0.25f);
  // The weights moved (the comparison above is not between untouched copies).
  EXPECT_FALSE(torch::equal(plain->g, torch::zeros({1})));
}

TEST(FlatParametersTest, RejectsMixedDtypes) {
  std::vector<torch::Tensor> params = {
      torch::zeros({2}, torch::TensorOptions().requires_grad(true)),
      torch::zeros({2}, torch::TensorOptions().dtype(torch::kDouble).requires_grad(true))};
  EXPECT_THROW(FlattenParameters(params), c10::Error);
}

}  // namespace
}  // namespace recsys
