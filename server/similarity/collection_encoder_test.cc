#include "server/similarity/collection_encoder.h"

#include <cmath>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/encoders/test_util.h"

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
  ts.mutable_torchscript()->set_dimension(8);
  s = CreateCollectionEncoder(v1::SIMILARITY_IMAGE_CASES, ts).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("config.encoder.torchscript.path"), absl::string_view::npos) << s;
  ts.mutable_torchscript()->set_dimension(0);
  s = CreateCollectionEncoder(v1::SIMILARITY_IMAGE_CASES, ts).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("config.encoder.torchscript.dimension"), absl::string_view::npos) << s;
  EXPECT_EQ(CreateCollectionEncoder(v1::SIMILARITY_KIND_UNSPECIFIED, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Backbones made at test time by testdata/make_encoder_modules.py, with the
// embeddings computed there independently (float64, no C++ involved).
class BackboneEncoderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing_util::PythonHasTorch()) return;
    dir_ = new std::string(testing_util::TempPath("encoder_modules", /*make_dir=*/true));
    made_ = testing_util::RunPython("server/similarity/testdata/make_encoder_modules.py",
                                    *dir_) == 0;
  }
  void SetUp() override {
    if (dir_ == nullptr) {
      GTEST_SKIP() << "/usr/bin/python3 lacks torch/numpy (Debian python3-torch)";
    }
    ASSERT_TRUE(made_) << "make_encoder_modules.py failed";
    ASSERT_OK_AND_ASSIGN(expected_,
                         SafetensorsFile::Open(JoinPath(*dir_, "expected.safetensors")));
  }
  std::vector<float> Expected(const std::string& name, int row, int width) {
    auto view = expected_->Get(name);
    EXPECT_OK(view.status());
    std::vector<float> out(width);
    EXPECT_OK(ReadAsFloat(*view, row * width, width, out.data()));
    return out;
  }
  static void ExpectNear(const std::vector<float>& got, const std::vector<float>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
  }
  static v1::EncoderSpec TorchScriptText(const std::string& module, v1::Pooling pooling,
                                         int dimension = 6) {
    v1::EncoderSpec spec;
    spec.mutable_torchscript()->set_path(JoinPath(*dir_, module));
    spec.mutable_torchscript()->set_vocab_path(JoinPath(*dir_, "vocab.txt"));
    spec.mutable_torchscript()->set_pooling(pooling);
    spec.mutable_torchscript()->set_dimension(dimension);
    return spec;
  }
  static v1::EncoderSpec TorchScriptImage(const std::string& module, int dimension = 5) {
    v1::EncoderSpec spec;
    v1::TorchScriptEncoder* ts = spec.mutable_torchscript();
    ts->set_path(JoinPath(*dir_, module));
    ts->set_dimension(dimension);
    ts->set_image_size(8);
    for (float m : {0.4f, 0.5f, 0.6f}) ts->add_image_mean(m);
    for (float s : {0.2f, 0.25f, 0.3f}) ts->add_image_std(s);
    return spec;
  }
  static v1::EncoderSpec Bert(v1::Pooling pooling) {
    v1::EncoderSpec spec;
    spec.mutable_bert()->set_model_dir(JoinPath(*dir_, "bert"));
    spec.mutable_bert()->set_pooling(pooling);
    spec.mutable_bert()->set_max_length(16);
    return spec;
  }
  static std::string* dir_;
  static bool made_;
  std::unique_ptr<SafetensorsFile> expected_;
};
std::string* BackboneEncoderTest::dir_ = nullptr;
bool BackboneEncoderTest::made_ = false;

constexpr auto kText = v1::SIMILARITY_TRANSLATION_EXAMPLES;
constexpr auto kImage = v1::SIMILARITY_IMAGE_CASES;

TEST_F(BackboneEncoderTest, BertClsAndMeanPoolingMatchTheReference) {
  ASSERT_OK_AND_ASSIGN(auto cls, CreateCollectionEncoder(kText, Bert(v1::POOLING_CLS)));
  ASSERT_OK_AND_ASSIGN(auto mean, CreateCollectionEncoder(kText, Bert(v1::POOLING_MEAN)));
  EXPECT_EQ(cls->dimension(), 64);
  EXPECT_FALSE(cls->needs_fit());
  // No max_length: 128 would exceed this model's 16 positions; its maximum
  // is taken instead.
  v1::EncoderSpec no_max = Bert(v1::POOLING_CLS);
  no_max.mutable_bert()->clear_max_length();
  ASSERT_OK_AND_ASSIGN(auto bounded, CreateCollectionEncoder(kText, no_max));
  EXPECT_EQ(bounded->fingerprint(), cls->fingerprint());
  EXPECT_THAT(cls->fingerprint(), ::testing::StartsWith("bert/bert-3x64 cls l2 weights="));
  EXPECT_THAT(mean->fingerprint(), ::testing::StartsWith("bert/bert-3x64 mean l2 weights="));
  const std::vector<std::string> texts = {"w5 w17 w33 w8 w90", "W40 w41"};
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(std::vector<float> c, cls->EmbedText(texts[i]));
    ASSERT_OK_AND_ASSIGN(std::vector<float> m, mean->EmbedText(texts[i]));
    ExpectNear(c, Expected("bert_cls", i, 64));
    ExpectNear(m, Expected("bert_mean", i, 64));
    double dot = 0;
    for (int j = 0; j < 64; ++j) dot += double{c[j]} * m[j];
    EXPECT_LT(dot, 0.999) << "mean pooling must not be the CLS vector";
  }
}

TEST_F(BackboneEncoderTest, TorchScriptTextClsAndMeanMatchTheReference) {
  ASSERT_OK_AND_ASSIGN(auto cls, CreateCollectionEncoder(kText, TorchScriptText("ts_text.pt", v1::POOLING_UNSPECIFIED)));
  ASSERT_OK_AND_ASSIGN(auto mean, CreateCollectionEncoder(kText, TorchScriptText("ts_text.pt", v1::POOLING_MEAN)));
  EXPECT_EQ(cls->dimension(), 6);
  EXPECT_THAT(cls->fingerprint(),
              ::testing::StartsWith("torchscript/torchscript-ts_text.pt cls l2 weights="));
  EXPECT_THAT(mean->fingerprint(),
              ::testing::StartsWith("torchscript/torchscript-ts_text.pt mean l2 weights="));
  const std::vector<std::string> texts = {"b c", "d a d"};
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(std::vector<float> c, cls->EmbedText(texts[i]));
    ASSERT_OK_AND_ASSIGN(std::vector<float> m, mean->EmbedText(texts[i]));
    ExpectNear(c, Expected("ts_cls", i, 6));
    ExpectNear(m, Expected("ts_mean", i, 6));
  }
  // Restoring (a restart) gives the same encoder, fingerprint included.
  ASSERT_OK_AND_ASSIGN(auto again, RestoreCollectionEncoder(
                                       kText, TorchScriptText("ts_text.pt", v1::POOLING_MEAN), ""));
  EXPECT_EQ(again->fingerprint(), mean->fingerprint());
}

TEST_F(BackboneEncoderTest, TorchScriptImageMatchesTheReference) {
  ASSERT_OK_AND_ASSIGN(auto e, CreateCollectionEncoder(kImage, TorchScriptImage("ts_image.pt")));
  EXPECT_EQ(e->dimension(), 5);
  GrayImage g;
  g.width = g.height = 8;
  for (int i = 0; i < 64; ++i) g.pixels.push_back(static_cast<float>((i * 3) % 256) / 255.0f);
  ASSERT_OK_AND_ASSIGN(std::vector<float> f, e->ImageFeatures(g));
  ASSERT_OK_AND_ASSIGN(std::vector<float> v, e->EmbedFeatureRows(f, 1));
  ExpectNear(v, Expected("ts_image", 0, 5));
}

TEST_F(BackboneEncoderTest, TorchScriptModulesAreValidatedAtCreation) {
  auto refused = [](v1::SimilarityKind kind, const v1::EncoderSpec& spec,
                    absl::StatusCode code, const std::string& text) {
    const absl::Status s = CreateCollectionEncoder(kind, spec).status();
    EXPECT_EQ(s.code(), code) << s;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(text));
  };
  // The declared width is checked against the module's output.
  refused(kText, TorchScriptText("ts_text.pt", v1::POOLING_CLS, 8),
          absl::StatusCode::kInvalidArgument,
          "config.encoder.torchscript.dimension: declared 8, but the module returns 6-wide");
  refused(kImage, TorchScriptImage("ts_image.pt", 6), absl::StatusCode::kInvalidArgument,
          "declared 6, but the module returns 5-wide");
  // NaN outputs.
  refused(kImage, TorchScriptImage("ts_nan.pt", 2), absl::StatusCode::kInvalidArgument,
          "non-finite");
  // Mean pooling needs token-level states; images have no mean pooling.
  refused(kText, TorchScriptText("ts_stacked.pt", v1::POOLING_MEAN),
          absl::StatusCode::kInvalidArgument, "mean pooling needs a module returning");
  ASSERT_OK(CreateCollectionEncoder(kText, TorchScriptText("ts_stacked.pt", v1::POOLING_CLS)).status());
  v1::EncoderSpec image_mean = TorchScriptImage("ts_image.pt");
  image_mean.mutable_torchscript()->set_pooling(v1::POOLING_MEAN);
  refused(kImage, image_mean, absl::StatusCode::kInvalidArgument,
          "config.encoder.torchscript.pooling");
  // A text module as an image module fails its probe; a file that is no
  // TorchScript archive; a missing vocabulary; image settings on text.
  refused(kImage, TorchScriptImage("ts_text.pt"), absl::StatusCode::kInvalidArgument,
          "config.encoder.torchscript");
  ASSERT_OK(WriteFileAtomically(JoinPath(*dir_, "junk.pt"), "not a zip archive"));
  refused(kImage, TorchScriptImage("junk.pt"), absl::StatusCode::kInvalidArgument,
          "config.encoder.torchscript");
  v1::EncoderSpec no_vocab = TorchScriptText("ts_text.pt", v1::POOLING_CLS);
  no_vocab.mutable_torchscript()->set_vocab_path(JoinPath(*dir_, "none.txt"));
  refused(kText, no_vocab, absl::StatusCode::kNotFound, "config.encoder.torchscript.vocab_path");
  v1::EncoderSpec mixed = TorchScriptText("ts_text.pt", v1::POOLING_CLS);
  mixed.mutable_torchscript()->set_image_size(8);
  refused(kText, mixed, absl::StatusCode::kInvalidArgument, "for image modules");
  v1::EncoderSpec bad_std = TorchScriptImage("ts_image.pt");
  bad_std.mutable_torchscript()->set_image_std(1, 0.0f);
  refused(kImage, bad_std, absl::StatusCode::kInvalidArgument,
          "config.encoder.torchscript.image_std");
}

TEST_F(BackboneEncoderTest, AnotherModuleFileIsAnotherFingerprint) {
  ASSERT_OK_AND_ASSIGN(auto a, CreateCollectionEncoder(kText, TorchScriptText("ts_text.pt", v1::POOLING_CLS)));
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(JoinPath(*dir_, "ts_stacked.pt")));
  ASSERT_OK(WriteFileAtomically(JoinPath(*dir_, "copy.pt"), bytes));
  ASSERT_OK_AND_ASSIGN(auto b, CreateCollectionEncoder(kText, TorchScriptText("copy.pt", v1::POOLING_CLS)));
  ASSERT_OK_AND_ASSIGN(std::string text_bytes, ReadFileToString(JoinPath(*dir_, "ts_text.pt")));
  ASSERT_OK(WriteFileAtomically(JoinPath(*dir_, "copy.pt"), text_bytes));
  ASSERT_OK_AND_ASSIGN(auto c, CreateCollectionEncoder(kText, TorchScriptText("copy.pt", v1::POOLING_CLS)));
  EXPECT_NE(b->fingerprint(), c->fingerprint());
  // The same file and settings again: the same fingerprint.
  ASSERT_OK_AND_ASSIGN(auto a2, CreateCollectionEncoder(kText, TorchScriptText("ts_text.pt", v1::POOLING_CLS)));
  EXPECT_EQ(a2->fingerprint(), a->fingerprint());
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
