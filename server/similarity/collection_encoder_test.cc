#include "server/similarity/collection_encoder.h"

#include <cmath>

#include "common/status_matchers.h"
#include "gtest/gtest.h"

namespace recsys {
namespace similarity {
namespace {

v1::EncoderSpec Pca(int components) {
  v1::EncoderSpec spec;
  spec.mutable_pixel_pca()->set_components(components);
  spec.mutable_pixel_pca()->set_resolution(4);
  return spec;
}

GrayImage Ramp(int seed) {
  GrayImage g;
  g.width = g.height = 8;
  for (int i = 0; i < 64; ++i) g.pixels.push_back(std::fmod(0.37f * i * (seed + 1), 1.0f));
  return g;
}

TEST(CollectionEncoderTest, WeightFreeImageEncoderFitsAndRestoresToTheSameFingerprint) {
  ASSERT_OK_AND_ASSIGN(auto base, CreateCollectionEncoder(v1::SIMILARITY_IMAGE_CASES, Pca(3)));
  EXPECT_TRUE(base->needs_fit());
  EXPECT_EQ(base->dimension(), 3);
  std::vector<float> rows;
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK_AND_ASSIGN(std::vector<float> f, base->ImageFeatures(Ramp(i)));
    ASSERT_EQ(f.size(), 16u);
    rows.insert(rows.end(), f.begin(), f.end());
  }
  // Not fitted: embedding is refused.
  EXPECT_EQ(base->EmbedFeatureRows(rows, 10).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_OK_AND_ASSIGN(auto fitted, base->FitFeatureRows(rows));
  ASSERT_OK_AND_ASSIGN(std::vector<float> v, fitted->EmbedFeatureRows(rows, 10));
  ASSERT_EQ(v.size(), 30u);
  EXPECT_NEAR(v[0] * v[0] + v[1] * v[1] + v[2] * v[2], 1.0, 1e-5);
  ASSERT_OK_AND_ASSIGN(auto restored, RestoreCollectionEncoder(v1::SIMILARITY_IMAGE_CASES, Pca(3),
                                                               fitted->Serialize()));
  EXPECT_EQ(restored->fingerprint(), fitted->fingerprint());
  ASSERT_OK_AND_ASSIGN(std::vector<float> w, restored->EmbedFeatureRows(rows, 10));
  EXPECT_EQ(w, v);
  // A damaged state is refused.
  std::string state = fitted->Serialize();
  state[state.size() / 2] ^= 1;
  EXPECT_EQ(RestoreCollectionEncoder(v1::SIMILARITY_IMAGE_CASES, Pca(3), state).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CollectionEncoderTest, TextDefaultIsHashedTextAndFittingChangesTheFingerprint) {
  ASSERT_OK_AND_ASSIGN(auto base, CreateCollectionEncoder(v1::SIMILARITY_TRANSLATION_EXAMPLES, {}));
  EXPECT_EQ(base->dimension(), 512);
  ASSERT_OK_AND_ASSIGN(auto fitted, base->FitTexts({"in the beginning", "the word was"}));
  EXPECT_NE(fitted->fingerprint(), base->fingerprint());
  ASSERT_OK_AND_ASSIGN(auto restored, RestoreCollectionEncoder(
                                          v1::SIMILARITY_TRANSLATION_EXAMPLES, {}, fitted->Serialize()));
  ASSERT_OK_AND_ASSIGN(std::vector<float> a, fitted->EmbedText("the beginning"));
  ASSERT_OK_AND_ASSIGN(std::vector<float> b, restored->EmbedText("the beginning"));
  EXPECT_EQ(a, b);
  EXPECT_EQ(fitted->ImageFeatures(Ramp(0)).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(CollectionEncoderTest, WrongKindPoolingAndTorchScriptAreRefusedPrecisely) {
  v1::EncoderSpec text;
  text.mutable_hashed_text();
  absl::Status s = CreateCollectionEncoder(v1::SIMILARITY_IMAGE_CASES, text).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("config.encoder.hashed_text"), absl::string_view::npos) << s;
  s = CreateCollectionEncoder(v1::SIMILARITY_TRANSLATION_EXAMPLES, Pca(3)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  v1::EncoderSpec vit;
  vit.mutable_vit()->set_pooling(v1::POOLING_MEAN);
  s = CreateCollectionEncoder(v1::SIMILARITY_IMAGE_CASES, vit).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("pooling"), absl::string_view::npos) << s;
  v1::EncoderSpec bert;
  bert.mutable_bert()->set_model_dir("/nonexistent");
  EXPECT_EQ(CreateCollectionEncoder(v1::SIMILARITY_TRANSLATION_EXAMPLES, bert).status().code(),
            absl::StatusCode::kNotFound);
  v1::EncoderSpec ts;
  ts.mutable_torchscript()->set_path("/x.pt");
  EXPECT_EQ(CreateCollectionEncoder(v1::SIMILARITY_IMAGE_CASES, ts).status().code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(CreateCollectionEncoder(v1::SIMILARITY_KIND_UNSPECIFIED, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
