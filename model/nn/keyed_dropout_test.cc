#include "model/nn/keyed_dropout.h"

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
