#include "model/encoders/backbone_config.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;

TEST(BertConfigTest, ParsesHuggingFaceConfig) {
  // Abridged bert-base-uncased config.json.
  ASSERT_OK_AND_ASSIGN(BertConfig c, ParseBertConfig(R"({
    "architectures": ["BertForMaskedLM"], "hidden_act": "gelu",
    "hidden_size": 768, "intermediate_size": 3072, "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12,
    "type_vocab_size": 2, "vocab_size": 30522})"));
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.num_hidden_layers, 12);
  EXPECT_DOUBLE_EQ(c.layer_norm_eps, 1e-12);
  ASSERT_OK_AND_ASSIGN(BertConfig small, ParseBertConfig(
      R"({"hidden_size": 256, "num_hidden_layers": 6, "num_attention_heads": 4,
          "layer_norm_eps": 1e-5})"));
  EXPECT_EQ(small.hidden_size, 256);
  EXPECT_EQ(small.intermediate_size, 3072);  // default kept
  ASSERT_OK_AND_ASSIGN(BertConfig again, ParseBertConfig(small.ToJson()));
  EXPECT_EQ(again.ToJson(), small.ToJson());
}

TEST(BertConfigTest, RejectsBadConfigs) {
  EXPECT_THAT(ParseBertConfig("not json"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseBertConfig(R"({"hidden_size": 100, "num_attention_heads": 12})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("multiple of num_attention_heads")));
  EXPECT_THAT(ParseBertConfig(R"({"hidden_act": "relu"})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hidden_act")));
  EXPECT_THAT(ParseBertConfig(R"({"num_hidden_layers": "six"})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("num_hidden_layers")));
  EXPECT_THAT(ParseBertConfig(R"({"num_hidden_layers": 0})"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ViTConfigTest, ParsesConfigAndPreprocessing) {
  ASSERT_OK_AND_ASSIGN(ViTConfig c, ParseViTConfig(R"({
    "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 128, "image_size": 32, "patch_size": 8,
    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]})"));
  EXPECT_EQ(c.image_size, 32);
  EXPECT_FLOAT_EQ(c.image_std[2], 0.225f);
  EXPECT_THAT(ParseViTConfig(R"({"image_size": 30, "patch_size": 8})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("patch_size")));
  EXPECT_THAT(ParseViTConfig(R"({"image_std": [0.5, 0, 0.5]})"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace recsys
