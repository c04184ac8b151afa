#include "model/nn/keyed_dropout.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace recsys {
namespace {

TEST(KeyedDropoutTest, RowShardsGetTheWholeTensorsMask) {
  torch::Tensor x = torch::ones({7, 3, 5});
  const DropoutKey key{12345, 0};
  torch::Tensor whole = KeyedDropout(x, 0.3, key);
  torch::Tensor top = KeyedDropout(x.narrow(0, 0, 4), 0.3, DropoutKey{12345, 0});
  torch::Tensor bottom = KeyedDropout(x.narrow(0, 4, 3), 0.3, DropoutKey{12345, 4});
  EXPECT_TRUE(torch::equal(torch::cat({top, bottom}), whole));
  // A shard whose first element is not the first of a hash's four (row 3
  // starts at element 45: the second of hash 11's) draws the same too.
  torch::Tensor head = KeyedDropout(x.narrow(0, 0, 3), 0.3, DropoutKey{12345, 0});
  torch::Tensor tail = KeyedDropout(x.narrow(0, 3, 4), 0.3, DropoutKey{12345, 3});
  EXPECT_TRUE(torch::equal(torch::cat({head, tail}), whole));
  // Another first_row is another part of the stream, not the same mask.
  EXPECT_FALSE(torch::equal(KeyedDropout(x.narrow(0, 0, 3), 0.3, DropoutKey{12345, 1}),
                            whole.narrow(0, 0, 3)));
}

TEST(KeyedDropoutTest, KeepsAboutOneMinusPScaledAndDependsOnTheKey) {
  torch::Tensor x = torch::ones({1000, 100});
  torch::Tensor a = KeyedDropout(x, 0.1, DropoutKey{1, 0});
  const double kept = (a > 0).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(kept, 0.9, 0.005);  // 100k draws: sd 0.001
  EXPECT_FLOAT_EQ(a.max().item<float>(), static_cast<float>(1.0 / 0.9));
  EXPECT_NEAR(a.mean().item<double>(), 1.0, 0.01);  // unbiased
  torch::Tensor b = KeyedDropout(x, 0.1, DropoutKey{2, 0});
  EXPECT_FALSE(torch::equal(a, b));
  EXPECT_TRUE(torch::equal(a, KeyedDropout(x, 0.1, DropoutKey{1, 0})));
  // Sites of one key draw different masks.
  const DropoutKey k{7, 0};
  EXPECT_FALSE(torch::equal(KeyedDropout(x, 0.1, k.Site(0)), KeyedDropout(x, 0.1, k.Site(1))));
}

// The mask element by element against its definition (keyed_dropout.h),
// whichever path filled it (eight hashes at a time where the CPU has
// AVX-512 DQ, one at a time otherwise), from shard starts inside a hash's
// four elements, and over lengths that leave a tail.
TEST(KeyedDropoutTest, MaskIsItsDefinitionElementByElement) {
  constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
  for (double p : {0.1, 0.5, 0.9}) {
    for (int64_t first_row : {0, 1, 3, 5, 77}) {
      const int64_t row_size = 7, n = 4099;
      const DropoutKey key{0xABCDEF0123ull, first_row};
      std::vector<float> mask(n, -1.0f);
      FillKeyedDropoutMask(p, key, row_size, n, mask.data());
      const uint64_t threshold = static_cast<uint64_t>(std::llround((1.0 - p) * 65536.0));
      const float kept = static_cast<float>(1.0 / (1.0 - p));
      int64_t dropped = 0;
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t g = static_cast<uint64_t>(first_row * row_size + i);
        const uint64_t bits = (MixBits(key.key + ((g >> 2) + 1) * kGolden) >> (16 * (g & 3))) & 0xFFFF;
        ASSERT_EQ(mask[i], bits < threshold ? kept : 0.0f) << "p " << p << " row " << first_row
                                                           << " element " << i;
        dropped += mask[i] == 0.0f;
      }
      EXPECT_NEAR(static_cast<double>(dropped) / n, p, 0.04);
    }
  }
}

TEST(KeyedDropoutTest, ZeroProbabilityIsTheIdentityAndGradientsFollowTheMask) {
  torch::Tensor x = torch::randn({4, 6}, torch::requires_grad());
  EXPECT_TRUE(KeyedDropout(x, 0.0, DropoutKey{3, 0}).is_same(x));
  torch::Tensor y = KeyedDropout(x, 0.5, DropoutKey{3, 0});
  y.sum().backward();
  torch::Tensor mask = (y.detach() != 0).to(torch::kFloat) * 2.0;
  EXPECT_TRUE(torch::equal(x.grad(), mask));
}

}  // namespace
}  // namespace recsys
