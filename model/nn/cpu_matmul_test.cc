#include "model/nn/cpu_matmul.h"

#include <cstdint>
#include <tuple>

#include "gtest/gtest.h"

namespace recsys {
namespace {

// Bit for bit: the fused kernels' training steps must not change.
void ExpectSameBits(const torch::Tensor& got, const torch::Tensor& want) {
  ASSERT_EQ(got.sizes(), want.sizes());
  ASSERT_TRUE(got.is_contiguous());
  EXPECT_TRUE(torch::equal(got, want)) << "max |diff| "
                                       << (got - want).abs().max().item<float>();
}

// The shapes a training step multiplies (rows: a row shard's or a whole
// step's slots and items; widths: the stand-in BERT's 256, the side
// blocks' 64, the encoder's 3 x 64 and 4 x 64), plus odd ones.
class CpuMatmulShapes : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(CpuMatmulShapes, EqualLibTorchsOpsBitForBit) {
  ASSERT_TRUE(CpuMatmulUsesBlas()) << "Debian's LibTorch resolves sgemm_ from libblas";
  const auto [m, n, k] = GetParam();
  torch::manual_seed(static_cast<uint64_t>(m * 1000 + n * 10 + k));
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({m, k}), w = torch::randn({n, k}), bias = torch::randn({n});
  ExpectSameBits(LinearRows(x, w, bias), torch::addmm(bias, x, w.t()));

  const torch::Tensor a = torch::randn({m, n}), b = torch::randn({m, k});
  ExpectSameBits(MatmulTransposeA(a, b), torch::mm(a.t(), b));

  const torch::Tensor c = torch::randn({n, k});
  ExpectSameBits(Matmul(a, c), torch::mm(a, c));

  const torch::Tensor acc = torch::randn({m, k});
  const torch::Tensor want = torch::addmm(acc, a, c);
  const void* storage = acc.data_ptr();
  AddMatmulInPlace(acc, a, c);
  EXPECT_EQ(acc.data_ptr(), storage) << "added into acc itself";
  ExpectSameBits(acc, want);

  // Into a zeroed gradient: what AccumulateGrad leaves there (0 + aᵀb).
  const torch::Tensor grad = torch::zeros({n, k});
  AddMatmulTransposeAInPlace(grad, a, b);
  ExpectSameBits(grad, torch::zeros({n, k}) + torch::mm(a.t(), b));
  const torch::Tensor sum = torch::randn({n, k});
  const torch::Tensor sum_want = sum.addmm(a.t(), b);
  AddMatmulTransposeAInPlace(sum, a, b);
  ExpectSameBits(sum, sum_want);
}

INSTANTIATE_TEST_SUITE_P(StepAndOddShapes, CpuMatmulShapes,
                         ::testing::Values(std::make_tuple(283, 64, 256),
                                           std::make_tuple(141, 256, 64),
                                           std::make_tuple(256, 192, 64),
                                           std::make_tuple(128, 64, 256),
                                           std::make_tuple(247, 228, 64),
                                           std::make_tuple(2, 2, 2),
                                           std::make_tuple(3, 7, 5),
                                           std::make_tuple(1031, 17, 33)));

// What the direct path does not take goes to LibTorch, with its results.
TEST(CpuMatmul, OtherInputsGoToLibTorch) {
  torch::manual_seed(3);
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({5, 8}), w = torch::randn({4, 8}), bias = torch::randn({4});
  // A transposed (non-contiguous) input, a single row, an empty one, doubles.
  const torch::Tensor xt = torch::randn({8, 5}).t();
  ExpectSameBits(LinearRows(xt, w, bias), torch::addmm(bias, xt, w.t()));
  const torch::Tensor row = torch::randn({1, 8});
  ExpectSameBits(LinearRows(row, w, bias), torch::addmm(bias, row, w.t()));
  EXPECT_EQ(LinearRows(torch::randn({0, 8}), w, bias).sizes(), torch::IntArrayRef({0, 4}));
  const torch::Tensor xd = x.to(torch::kDouble), wd = w.to(torch::kDouble);
  ExpectSameBits(LinearRows(xd, wd, bias.to(torch::kDouble)),
                 torch::addmm(bias.to(torch::kDouble), xd, wd.t()));
  ExpectSameBits(MatmulTransposeA(xt.t().contiguous().t(), xt), torch::mm(xt.t(), xt));
  const torch::Tensor acc = torch::randn({5, 8}).t().contiguous().t();  // non-contiguous
  const torch::Tensor want = torch::addmm(acc, torch::eye(5) * 2, acc);
  AddMatmulInPlace(acc, torch::eye(5) * 2, acc.clone());
  ExpectSameBits(acc.contiguous(), want);
}

// Under grad mode a product of tensors that require grad is recorded.
TEST(CpuMatmul, RecordsTheGraphWhereAutogradNeedsIt) {
  const torch::Tensor x = torch::randn({6, 3}, torch::requires_grad());
  const torch::Tensor w = torch::randn({2, 3}), bias = torch::randn({2});
  const torch::Tensor y = LinearRows(x, w, bias);
  ASSERT_TRUE(y.requires_grad());
  y.sum().backward();
  ExpectSameBits(x.grad(), w.sum(0).expand({6, 3}).contiguous());
}

}  // namespace
}  // namespace recsys
