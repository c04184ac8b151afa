#include "server/similarity/pixel_pca_embedder.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace similarity {
namespace {

using ::testing::HasSubstr;

constexpr int kRes = 4;
constexpr int kDim = kRes * kRes;

// Pattern u lights pixels 0..3, v pixels 4..7 (each with norm 1); images are
// 0.5 + a u + b v with a = +-3 and b = +-1 exactly uncorrelated, so the
// covariance has eigenvalues 9 n/(n-1) (along u) and n/(n-1) (along v).
GrayImage PatternImage(double a, double b) {
  GrayImage g{kRes, kRes, std::vector<float>(kDim, 0.5f)};
  for (int i = 0; i < 4; ++i) g.pixels[i] += 0.5 * a;
  for (int i = 4; i < 8; ++i) g.pixels[i] += 0.5 * b;
  return g;
}

std::vector<GrayImage> PatternSet(int n) {
  std::vector<GrayImage> images;
  for (int i = 0; i < n; ++i) {
    const double a = (i % 2 == 0) ? 3 : -3;
    const double b = (i % 4 < 2) ? 1 : -1;
    images.push_back(PatternImage(a, b));
  }
  return images;
}

PixelPcaOptions SmallOptions(double whitening) {
  PixelPcaOptions o;
  o.resolution = kRes;
  o.components = 2;
  o.whitening = whitening;
  return o;
}

TEST(PixelPcaEmbedderTest, RecoversTheComponentsAndTheirVariances) {
  const int n = 400;
  ASSERT_OK_AND_ASSIGN(auto e,
                       PixelPcaEmbedder::FitImages(SmallOptions(0), PatternSet(n)));
  ASSERT_EQ(e->eigenvalues().size(), 2u);
  EXPECT_NEAR(e->eigenvalues()[0], 9.0 * n / (n - 1), 1e-4);
  EXPECT_NEAR(e->eigenvalues()[1], 1.0 * n / (n - 1), 1e-4);
  EXPECT_EQ(e->dimension(), 2);
  EXPECT_EQ(e->fitted_images(), n);
  // Without whitening the embedding is the normalised (a, b).
  ASSERT_OK_AND_ASSIGN(auto y, e->Embed(PatternImage(3, 1)));
  EXPECT_NEAR(y[0], 3 / std::sqrt(10.0), 1e-5);
  EXPECT_NEAR(y[1], 1 / std::sqrt(10.0), 1e-5);
  // The mean image has no direction: all zeros, not NaN.
  ASSERT_OK_AND_ASSIGN(auto z, e->Embed(PatternImage(0, 0)));
  EXPECT_NEAR(z[0], 0, 1e-6);
  EXPECT_NEAR(z[1], 0, 1e-6);
}

TEST(PixelPcaEmbedderTest, WhiteningDividesByTheStandardDeviation) {
  const int n = 400;
  ASSERT_OK_AND_ASSIGN(auto e,
                       PixelPcaEmbedder::FitImages(SmallOptions(1), PatternSet(n)));
  const double l0 = 9.0 * n / (n - 1), l1 = 1.0 * n / (n - 1);
  const double eps = 1e-3 * l0;
  const double c0 = 3 / std::sqrt(l0 + eps), c1 = 1 / std::sqrt(l1 + eps);
  ASSERT_OK_AND_ASSIGN(auto y, e->Embed(PatternImage(3, 1)));
  EXPECT_NEAR(y[0], c0 / std::hypot(c0, c1), 1e-5);
  EXPECT_NEAR(y[1], c1 / std::hypot(c0, c1), 1e-5);
}

std::vector<GrayImage> RandomImages(int n, int side, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<GrayImage> images;
  for (int i = 0; i < n; ++i) {
    GrayImage g{side, side, std::vector<float>(side * side)};
    for (float& p : g.pixels) p = u(rng);
    images.push_back(g);
  }
  return images;
}

TEST(PixelPcaEmbedderTest, BatchEqualsSingleAndOutputIsUnitNorm) {
  PixelPcaOptions o;
  o.resolution = 8;
  o.components = 10;
  const auto images = RandomImages(50, 12, 1);  // resized 12 -> 8
  ASSERT_OK_AND_ASSIGN(auto e, PixelPcaEmbedder::FitImages(o, images));
  std::vector<float> rows;
  for (int i = 0; i < 5; ++i) {
    auto r = PixelPcaEmbedder::Preprocess(images[i], 8);
    rows.insert(rows.end(), r.begin(), r.end());
  }
  ASSERT_OK_AND_ASSIGN(auto batch, e->EmbedRows(rows));
  ASSERT_EQ(batch.size(), 5u * 10u);
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(auto one, e->Embed(images[i]));
    double norm = 0;
    for (int j = 0; j < 10; ++j) {
      EXPECT_NEAR(one[j], batch[i * 10 + j], 1e-5);
      norm += one[j] * one[j];
    }
    EXPECT_NEAR(norm, 1.0, 1e-5);
  }
}

TEST(PixelPcaEmbedderTest, SerializeRoundTripsAndDetectsDamage) {
  PixelPcaOptions o;
  o.resolution = 8;
  o.components = 6;
  const auto images = RandomImages(40, 8, 2);
  ASSERT_OK_AND_ASSIGN(auto e, PixelPcaEmbedder::FitImages(o, images));
  const std::string blob = e->Serialize();
  ASSERT_OK_AND_ASSIGN(auto back, PixelPcaEmbedder::Deserialize(blob));
  EXPECT_EQ(back->fingerprint(), e->fingerprint());
  EXPECT_THAT(e->fingerprint(), HasSubstr("pixel_pca/v1 res=8 k=6"));
  ASSERT_OK_AND_ASSIGN(auto a, e->Embed(images[3]));
  ASSERT_OK_AND_ASSIGN(auto b, back->Embed(images[3]));
  EXPECT_EQ(a, b);

  // A refit on the same data is the same embedder; other data or other
  // settings are not.
  ASSERT_OK_AND_ASSIGN(auto again, PixelPcaEmbedder::FitImages(o, images));
  EXPECT_EQ(again->fingerprint(), e->fingerprint());
  ASSERT_OK_AND_ASSIGN(auto other,
                       PixelPcaEmbedder::FitImages(o, RandomImages(40, 8, 3)));
  EXPECT_NE(other->fingerprint(), e->fingerprint());
  o.whitening = 0.25;
  ASSERT_OK_AND_ASSIGN(auto whiter, PixelPcaEmbedder::FitImages(o, images));
  EXPECT_NE(whiter->fingerprint(), e->fingerprint());

  // One flipped bit in the last tensor byte: the checksum catches it.
  std::string damaged = blob;
  damaged[damaged.size() - 1] ^= 0x01;
  EXPECT_THAT(PixelPcaEmbedder::Deserialize(damaged),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("checksum")));
  EXPECT_THAT(PixelPcaEmbedder::Deserialize("not a safetensors blob"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

std::string RunfilePath(const std::string& relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", ws ? ws : "recsys", "/",
                      relative);
}

TEST(PixelPcaEmbedderTest, MatchesNumpyEigh) {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "no /usr/bin/python3 with numpy";
  }
  // 300 rows of 8x8 pixels with clearly separated variances per direction.
  constexpr int kN = 300, kD = 64, kK = 12;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> rows(kN * kD);
  for (int i = 0; i < kN; ++i) {
    for (int j = 0; j < kD; ++j) {
      rows[i * kD + j] = 0.5f + normal(rng) * 0.3f / (1 + 0.5f * j);
    }
  }
  // Mix the pixels so the components are not the pixel axes.
  for (int i = 0; i < kN; ++i) {
    for (int j = 1; j < kD; ++j) rows[i * kD + j] += 0.3f * rows[i * kD + j - 1];
  }
  PixelPcaOptions o;
  o.resolution = 8;
  o.components = kK;
  o.whitening = 0.6;
  ASSERT_OK_AND_ASSIGN(auto e, PixelPcaEmbedder::Fit(o, rows));
  ASSERT_OK_AND_ASSIGN(auto embedded, e->EmbedRows(rows));

  const std::string in = TestTempPath("pca_rows.f32");
  const std::string out = TestTempPath("pca_numpy.f32");
  ASSERT_OK(WriteFileAtomically(
      in, std::string(reinterpret_cast<const char*>(rows.data()),
                      rows.size() * sizeof(float))));
  const std::string cmd = absl::StrCat(
      "/usr/bin/python3 '",
      RunfilePath("server/similarity/testdata/pca_reference.py"), "' '", in,
      "' ", kN, " ", kD, " ", kK, " ", o.whitening, " ", o.whitening_epsilon,
      " '", out, "'");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  ASSERT_OK_AND_ASSIGN(std::string ref_bytes, ReadFileToString(out));
  ASSERT_EQ(ref_bytes.size(), (kK + kN * kK) * sizeof(float));
  std::vector<float> ref(kK + kN * kK);
  std::memcpy(ref.data(), ref_bytes.data(), ref_bytes.size());
  for (int j = 0; j < kK; ++j) {
    EXPECT_NEAR(e->eigenvalues()[j], ref[j], 1e-5 * ref[0]) << j;
  }
  double max_diff = 0;
  for (int i = 0; i < kN * kK; ++i) {
    max_diff = std::max<double>(max_diff, std::abs(embedded[i] - ref[kK + i]));
  }
  EXPECT_LT(max_diff, 1e-4);
}

TEST(PixelPcaEmbedderTest, RefusesBadInput) {
  PixelPcaOptions o = SmallOptions(0.5);
  o.components = 17;
  EXPECT_THAT(PixelPcaEmbedder::FitImages(o, PatternSet(40)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("components")));
  o = SmallOptions(1.5);
  EXPECT_THAT(PixelPcaEmbedder::FitImages(o, PatternSet(40)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("whitening")));
  EXPECT_THAT(PixelPcaEmbedder::FitImages(SmallOptions(0.5), PatternSet(2)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("at least components + 1")));
  EXPECT_THAT(PixelPcaEmbedder::Fit(SmallOptions(0.5), std::vector<float>(17)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("multiple")));
  ASSERT_OK_AND_ASSIGN(auto e, PixelPcaEmbedder::FitImages(SmallOptions(0.5),
                                                           PatternSet(40)));
  EXPECT_THAT(e->Embed(GrayImage{}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(e->Embed(GrayImage{3, 3, std::vector<float>(8)}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  GrayImage nan_image = PatternImage(1, 1);
  nan_image.pixels[5] = std::nanf("");
  EXPECT_THAT(e->Embed(nan_image),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not finite")));
  std::vector<GrayImage> with_inf = PatternSet(40);
  with_inf[7].pixels[0] = INFINITY;
  EXPECT_THAT(PixelPcaEmbedder::FitImages(SmallOptions(0.5), with_inf),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not finite")));
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
