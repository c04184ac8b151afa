#include "model/encoders/bert_text_encoder.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/encoders/test_util.h"

namespace recsys {
namespace {

class BertTextEncoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = testing_util::DataDir();
    vocab_ = JoinPath(data_, "bert-base-uncased/vocab.txt");
    if (data_.empty() || !PathExists(vocab_)) {
      GTEST_SKIP() << "RECSYS_DATA_DIR unset or lacks bert-base-uncased/vocab.txt";
    }
  }
  BertTextEncoderOptions Small() {
    BertTextEncoderOptions o;
    o.vocab_path = vocab_;
    o.config.hidden_size = 32;
    o.config.num_hidden_layers = 2;
    o.config.num_attention_heads = 4;
    o.config.intermediate_size = 64;
    o.config.max_position_embeddings = 64;
    o.batch_size = 3;
    return o;
  }
  std::string data_, vocab_;
};

TEST_F(BertTextEncoderTest, StandinEncodesTitlesIndependentOfBatching) {
  ASSERT_OK_AND_ASSIGN(auto enc, CreateBertTextEncoder(Small()));
  EXPECT_TRUE(enc->info().standin);
  EXPECT_EQ(enc->info().name, "bert-standin-2x32");
  EXPECT_EQ(enc->info().num_states, 3);
  EXPECT_EQ(enc->info().hidden_size, 32);
  EXPECT_EQ(enc->info().fingerprint.size(), 16u);
  const std::vector<std::string> titles = {
      "Digital Manometer &amp; Gauge", "Stethoscope", "",
      "T8 Lead Screw Dia 8MM Pitch 2mm Lead 2mm Length 100mm-800mm",
      "eSUN 1.75mm Purple PLA 3D Printer filament"};
  ASSERT_OK_AND_ASSIGN(std::vector<float> all, enc->Encode(titles));
  ASSERT_EQ(all.size(), titles.size() * 3 * 32);
  const size_t row = 3 * 32;
  for (size_t i = 0; i < titles.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(std::vector<float> one, enc->Encode({titles[i]}));
    for (size_t j = 0; j < row; ++j) {
      ASSERT_NEAR(one[j], all[i * row + j], 1e-5) << "title " << i;
    }
  }
  // Different titles give different final states.
  float diff = 0;
  for (size_t j = 2 * 32; j < row; ++j) diff += std::fabs(all[j] - all[row + j]);
  EXPECT_GT(diff, 1e-3);
  // Same seed, same states and fingerprint; another seed differs.
  ASSERT_OK_AND_ASSIGN(auto again, CreateBertTextEncoder(Small()));
  EXPECT_EQ(again->info().fingerprint, enc->info().fingerprint);
  BertTextEncoderOptions other = Small();
  other.seed = 43;
  ASSERT_OK_AND_ASSIGN(auto enc43, CreateBertTextEncoder(other));
  EXPECT_NE(enc43->info().fingerprint, enc->info().fingerprint);
}

TEST_F(BertTextEncoderTest, EncodesRealTitlesToFiniteStates) {
  ASSERT_OK_AND_ASSIGN(std::string items,
                       ReadFileToString(JoinPath(data_, "amazon-scientific/items.tsv")));
  std::vector<std::string> titles;
  for (absl::string_view line : absl::StrSplit(items, '\n', absl::SkipEmpty())) {
    std::vector<std::string> cols = absl::StrSplit(line, '\t');
    titles.push_back(cols[1]);
    if (titles.size() == 200) break;
  }
  BertTextEncoderOptions o = Small();
  o.batch_size = 64;
  ASSERT_OK_AND_ASSIGN(auto enc, CreateBertTextEncoder(o));
  ASSERT_OK_AND_ASSIGN(std::vector<float> states, enc->Encode(titles));
  ASSERT_EQ(states.size(), 200u * 3 * 32);
  for (float v : states) ASSERT_TRUE(std::isfinite(v));
}

TEST_F(BertTextEncoderTest, RejectsBadOptions) {
  BertTextEncoderOptions o = Small();
  o.device = "tpu";
  EXPECT_THAT(CreateBertTextEncoder(o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = Small();
  o.config.vocab_size = 1000;  // smaller than the vocabulary
  EXPECT_THAT(CreateBertTextEncoder(o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = Small();
  o.max_length = 100;  // > max_position_embeddings
  EXPECT_THAT(CreateBertTextEncoder(o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = Small();
  o.weights_path = testing_util::TempPath("missing/model.safetensors");
  EXPECT_THAT(CreateBertTextEncoder(o), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace recsys
