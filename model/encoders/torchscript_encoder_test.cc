#include "model/encoders/torchscript_encoder.h"

#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/encoders/test_util.h"

namespace recsys {
namespace {

using testing_util::TempPath;

class TorchScriptEncoderTest : public ::testing::Test {
 protected:
  // The modules are made once: importing torch in Python takes seconds.
  static void SetUpTestSuite() {
    if (!testing_util::PythonHasTorch()) return;
    dir_ = new std::string(TempPath("torchscript", /*make_dir=*/true));
    made_ = testing_util::RunPython(
                "model/encoders/testdata/make_torchscript.py", *dir_) == 0;
  }
  void SetUp() override {
    if (dir_ == nullptr) {
      GTEST_SKIP() << "/usr/bin/python3 lacks torch/numpy (Debian python3-torch)";
    }
    ASSERT_TRUE(made_) << "make_torchscript.py failed";
    ASSERT_OK_AND_ASSIGN(expected_,
                         SafetensorsFile::Open(JoinPath(*dir_, "expected.safetensors")));
  }
  std::vector<float> Expected(const std::string& name) {
    auto view = expected_->Get(name);
    EXPECT_OK(view.status());
    std::vector<float> out(view->num_elements());
    EXPECT_OK(ReadAsFloat(*view, 0, out.size(), out.data()));
    return out;
  }
  // text.pt with the toy vocabulary the Python side used.
  TorchScriptTextEncoderOptions TextOptions() {
    const std::string vocab = JoinPath(*dir_, "vocab.txt");
    EXPECT_OK(WriteFileAtomically(vocab, "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\nc\nd\n"));
    TorchScriptTextEncoderOptions o;
    o.module_path = JoinPath(*dir_, "text.pt");
    o.vocab_path = vocab;
    return o;
  }
  static std::string* dir_;
  static bool made_;
  std::unique_ptr<SafetensorsFile> expected_;
};

std::string* TorchScriptEncoderTest::dir_ = nullptr;
bool TorchScriptEncoderTest::made_ = false;

TEST_F(TorchScriptEncoderTest, TextModuleReturningHiddenStateTuple) {
  ASSERT_OK_AND_ASSIGN(auto enc, CreateTorchScriptTextEncoder(TextOptions()));
  EXPECT_EQ(enc->info().num_states, 3);
  EXPECT_EQ(enc->info().hidden_size, 6);
  EXPECT_EQ(enc->info().name, "torchscript-text.pt");
  EXPECT_FALSE(enc->info().standin);
  // "B C" -> [CLS] b c [SEP]; "d" -> [CLS] d [SEP] [PAD]: the ids the Python
  // side used.
  ASSERT_OK_AND_ASSIGN(std::vector<float> got, enc->Encode({"B C", "d"}));
  const std::vector<float> want = Expected("text_expected");
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
}

TEST_F(TorchScriptEncoderTest, TextMeanPoolingHonoursTheMask) {
  ASSERT_OK_AND_ASSIGN(auto enc, CreateTorchScriptTextEncoder(TextOptions()));
  // In one batch "d" is padded to 4 tokens: the mean must leave [PAD] out.
  ASSERT_OK_AND_ASSIGN(std::vector<float> got, enc->EncodeMeanPooled({"B C", "d"}));
  const std::vector<float> want = Expected("text_mean_expected");
  ASSERT_EQ(got.size(), want.size());
  ASSERT_EQ(got.size(), 2u * 6);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
  // Alone (no padding) the same.
  ASSERT_OK_AND_ASSIGN(std::vector<float> alone, enc->EncodeMeanPooled({"d"}));
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(alone[i], want[6 + i], 1e-5) << i;
}

TEST_F(TorchScriptEncoderTest, ImageModuleReturningStackedStates) {
  TorchScriptImageEncoderOptions o;
  o.module_path = JoinPath(*dir_, "image.pt");
  o.image_size = 8;
  o.image_mean = {0.4f, 0.5f, 0.6f};
  o.image_std = {0.2f, 0.25f, 0.3f};
  ASSERT_OK_AND_ASSIGN(auto enc, CreateTorchScriptImageEncoder(o));
  EXPECT_EQ(enc->info().num_states, 3);
  EXPECT_EQ(enc->info().hidden_size, 5);
  RgbImage im;
  im.width = im.height = 8;
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 8; ++x) {
      for (int c = 0; c < 3; ++c) {
        im.pixels.push_back(static_cast<uint8_t>((x * 7 + y * 13 + c * 29) % 256));
      }
    }
  }
  ASSERT_OK_AND_ASSIGN(std::vector<float> got, enc->Encode({im}));
  const std::vector<float> want = Expected("image_expected");
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
}

TEST_F(TorchScriptEncoderTest, BadModules) {
  TorchScriptImageEncoderOptions o;
  o.module_path = JoinPath(*dir_, "missing.pt");
  EXPECT_THAT(CreateTorchScriptImageEncoder(o), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(WriteFileAtomically(JoinPath(*dir_, "junk.pt"), "not a zip archive"));
  o.module_path = JoinPath(*dir_, "junk.pt");
  EXPECT_THAT(CreateTorchScriptImageEncoder(o),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // The text module called as an image module fails its probe.
  o.module_path = JoinPath(*dir_, "text.pt");
  o.image_size = 8;
  EXPECT_THAT(CreateTorchScriptImageEncoder(o),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace recsys
