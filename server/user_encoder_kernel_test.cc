#include "server/user_encoder_kernel.h"

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "model/nn/user_encoder.h"

namespace recsys {
namespace {

struct Difference {
  float max_abs_difference = 0;
  float max_abs_output = 0;
};

// The kernel against the LibTorch module (eval: no dropout) with random
// weights (every parameter moved off its initial value by N(0, noise)),
// batch sizes 1..33 and left-padded histories of 0..max_len items, with
// garbage in the padded slots: both the module's ForwardLast and forward's
// last position.
Difference Compare(const UserEncoderOptions& o, double noise, uint64_t seed) {
  torch::manual_seed(seed);
  UserEncoder enc(o);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : enc->parameters()) p.add_(torch::randn_like(p) * noise);
  }
  enc->eval();
  absl::StatusOr<std::unique_ptr<UserEncoderKernel>> kernel = UserEncoderKernel::Create(*enc);
  EXPECT_OK(kernel.status());
  if (!kernel.ok()) return {};
  EXPECT_EQ((*kernel)->dim(), o.dim());
  EXPECT_EQ((*kernel)->max_len(), o.max_len());
  const int64_t L = o.max_len(), d = o.dim();
  Difference worst;
  for (int64_t b = 1; b <= 33; ++b) {
    torch::InferenceMode guard;
    torch::Tensor items = torch::randn({b, L, d});
    // 0..L items: every length several times; an empty history (nothing
    // valid, not even the last position) is legal for the module too.
    torch::Tensor len = (torch::arange(b) % (L + 1)).index_select(0, torch::randperm(b));
    torch::Tensor valid = torch::arange(L).unsqueeze(0).ge(L - len.unsqueeze(1));
    torch::Tensor last = enc->ForwardLast(items, valid);
    torch::Tensor full = enc->forward(items, valid).select(1, L - 1);
    torch::Tensor valid8 = valid.to(torch::kUInt8).contiguous();
    std::vector<float> got(b * d);
    (*kernel)->ForwardLast(items.data_ptr<float>(), valid8.data_ptr<uint8_t>(), b, got.data());
    torch::Tensor out = torch::from_blob(got.data(), {b, d}).clone();
    EXPECT_FALSE(torch::isnan(out).any().item<bool>());
    worst.max_abs_difference = std::max({worst.max_abs_difference,
                                         (out - last).abs().max().item<float>(),
                                         (out - full).abs().max().item<float>()});
    worst.max_abs_output = std::max(worst.max_abs_output, full.abs().max().item<float>());
  }
  return worst;
}

// Float rounding, not a different function (a wrong mask, weight or
// position is off by 1e-2 or more): with weights near their initial scale
// (a trained encoder's), 1e-6 of the largest output, as
// model/nn/user_encoder_test allows between ForwardLast and forward; with
// larger weights (N(0, 0.2) added: peaked attention amplifies rounding),
// 1e-5 of it. Measured: 1.2-1.7e-6 and 3.9e-6-2.0e-5 at outputs up to ~4;
// the module itself, one user at a time against the same users batched,
// differs by 1.2-1.7e-6 and 2.9-6.7e-6 there.
TEST(UserEncoderKernelTest, EqualsTheModuleAtServingShape) {
  for (int64_t layers : {1, 2, 3}) {
    for (double noise : {0.05, 0.2}) {
      SCOPED_TRACE(::testing::Message() << layers << " layers, noise " << noise);
      Difference diff = Compare(UserEncoderOptions().num_layers(layers), noise, 5 + layers);
      const double tolerance = noise < 0.1 ? 1e-6 : 1e-5;
      EXPECT_LE(diff.max_abs_difference, tolerance * std::max(1.0f, diff.max_abs_output));
      EXPECT_GT(diff.max_abs_output, 0.5f);
    }
  }
}

TEST(UserEncoderKernelTest, EqualsTheModuleAtOtherShapes) {
  // Odd head width, a wide FFN, a window of 1, no blocks at all.
  for (const UserEncoderOptions& o :
       {UserEncoderOptions().dim(12).num_heads(3).ffn_dim(40).max_len(7).num_layers(2),
        UserEncoderOptions().dim(8).num_heads(1).ffn_dim(16).max_len(1).num_layers(2),
        UserEncoderOptions().dim(16).num_heads(2).ffn_dim(32).max_len(5).num_layers(0)}) {
    SCOPED_TRACE(::testing::Message() << "dim " << o.dim() << " max_len " << o.max_len()
                                      << " layers " << o.num_layers());
    Difference diff = Compare(o, 0.1, 17);
    EXPECT_LE(diff.max_abs_difference, 1e-6 * std::max(1.0f, diff.max_abs_output));
  }
}

// Concurrent calls (the server's encoder workers) each use their own
// scratch: every thread's answers equal the single-threaded ones.
TEST(UserEncoderKernelTest, ConcurrentCallsAgree) {
  torch::manual_seed(3);
  UserEncoder enc(UserEncoderOptions().dropout(0.0));
  enc->eval();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<UserEncoderKernel> kernel, UserEncoderKernel::Create(*enc));
  const int64_t L = 10, d = 64;
  std::vector<std::vector<float>> items(4), want(4);
  std::vector<std::vector<uint8_t>> valid(4);
  for (int t = 0; t < 4; ++t) {
    const int64_t b = 5 + 7 * t;
    torch::Tensor x = torch::randn({b, L, d}).contiguous();
    items[t].assign(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
    for (int64_t u = 0; u < b; ++u)
      for (int64_t p = 0; p < L; ++p) valid[t].push_back(p >= L - 1 - (u % L));
    want[t].resize(b * d);
    kernel->ForwardLast(items[t].data(), valid[t].data(), b, want[t].data());
  }
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const int64_t b = 5 + 7 * t;
      std::vector<float> got(b * d);
      for (int rep = 0; rep < 200; ++rep) {
        kernel->ForwardLast(items[t].data(), valid[t].data(), b, got.data());
        if (got != want[t]) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace recsys
