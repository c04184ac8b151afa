#include "server/similarity/gray_image.h"

#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/encoders/image_io.h"

namespace recsys {
namespace similarity {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;

TEST(GrayImageTest, LumaOfPrimaries) {
  RgbImage rgb{3, 1, {255, 0, 0, 0, 255, 0, 255, 255, 255}};
  GrayImage g = GrayFromRgb(rgb);
  EXPECT_THAT(g.pixels, ElementsAre(FloatNear(0.299f, 1e-6),
                                    FloatNear(0.587f, 1e-6),
                                    FloatNear(1.0f, 1e-6)));
}

TEST(GrayImageTest, EnlargingMatchesImageIoResizeBilinear) {
  std::mt19937 rng(3);
  RgbImage rgb{5, 4, {}};
  for (int i = 0; i < 5 * 4; ++i) {
    const uint8_t v = rng() % 256;
    rgb.pixels.insert(rgb.pixels.end(), {v, v, v});  // grey, so luma = v
  }
  const std::vector<float> want = ResizeBilinear(rgb, 9, 7);
  const std::vector<float> got = ResizeGray(GrayFromRgb(rgb), 9, 7);
  ASSERT_EQ(got.size(), 9u * 7u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i * 3] / 255.0f, 1e-5) << i;
  }
}

TEST(GrayImageTest, ShrinkingAveragesAreas) {
  // 4x2 -> 2x1: each output pixel is the mean of a 2x2 block.
  GrayImage g{4, 2, {0, 1, 2, 3, 4, 5, 6, 7}};
  EXPECT_THAT(ResizeGray(g, 2, 1),
              ElementsAre(FloatNear(2.5f, 1e-6), FloatNear(4.5f, 1e-6)));
  // 3 -> 2 along x: fractional overlaps (1, 0.5) and (0.5, 1), over 1.5.
  GrayImage h{3, 1, {0, 3, 6}};
  EXPECT_THAT(ResizeGray(h, 2, 1),
              ElementsAre(FloatNear(1.0f, 1e-6), FloatNear(5.0f, 1e-6)));
}

TEST(GrayImageTest, SameSizeIsIdentity) {
  GrayImage g{3, 2, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}};
  EXPECT_EQ(ResizeGray(g, 3, 2), g.pixels);
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
