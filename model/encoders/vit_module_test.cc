#include "model/encoders/vit_module.h"

#include <cstdio>
#include <string>

#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/encoders/test_util.h"
#include "model/encoders/vit_image_encoder.h"

namespace recsys {
namespace {

using testing_util::TempPath;

torch::Tensor ToTensor(const TensorView& v) {
  std::vector<float> data(v.num_elements());
  EXPECT_OK(ReadAsFloat(v, 0, v.num_elements(), data.data()));
  return torch::from_blob(data.data(), v.shape, torch::kFloat).clone();
}

TEST(ViTModuleTest, MatchesPythonReferenceTo1e4) {
  if (!testing_util::PythonHasTorch()) {
    GTEST_SKIP() << "/usr/bin/python3 lacks torch/numpy (Debian python3-torch)";
  }
  const std::string dir = TempPath("vit_ref", /*make_dir=*/true);
  ASSERT_EQ(testing_util::RunPython("model/encoders/testdata/vit_reference.py", dir), 0);
  ASSERT_OK_AND_ASSIGN(std::string text, ReadFileToString(JoinPath(dir, "config.json")));
  ASSERT_OK_AND_ASSIGN(ViTConfig config, ParseViTConfig(text));
  ViT model(config);
  model->eval();
  int unused = -1;
  ASSERT_OK(LoadHfWeights(JoinPath(dir, "model.safetensors"), "vit.",
                          model->HfParameters(), &unused));
  EXPECT_EQ(unused, 2);  // final layernorm weight and bias
  ASSERT_OK_AND_ASSIGN(auto ref, SafetensorsFile::Open(JoinPath(dir, "reference.safetensors")));
  ASSERT_OK_AND_ASSIGN(TensorView pixels, ref->Get("pixel_values"));
  ASSERT_OK_AND_ASSIGN(TensorView expected_view, ref->Get("expected"));
  const torch::Tensor expected = ToTensor(expected_view);
  torch::InferenceMode guard;
  const torch::Tensor got = model->forward(ToTensor(pixels));
  ASSERT_EQ(got.sizes(), expected.sizes());
  const double max_diff = (got - expected).abs().max().item<double>();
  RecordProperty("max_abs_diff", std::to_string(max_diff));
  std::printf("max |C++ - reference| = %.3g\n", max_diff);
  EXPECT_LT(max_diff, 1e-4) << "max |C++ - reference| = " << max_diff;
  EXPECT_GT(expected.abs().mean().item<double>(), 0.1);
}

TEST(ViTImageEncoderTest, StandinEncodesImagesOfAnySize) {
  ViTImageEncoderOptions o;
  o.config.hidden_size = 32;
  o.config.num_hidden_layers = 2;
  o.config.num_attention_heads = 2;
  o.config.intermediate_size = 64;
  o.config.image_size = 32;
  o.config.patch_size = 8;
  o.batch_size = 2;
  ASSERT_OK_AND_ASSIGN(auto enc, CreateViTImageEncoder(o));
  EXPECT_TRUE(enc->info().standin);
  EXPECT_EQ(enc->info().name, "vit-standin-2x32-p8-32");
  EXPECT_EQ(enc->info().num_states, 3);
  std::vector<RgbImage> images(3);
  for (int i = 0; i < 3; ++i) {
    images[i].width = 20 + 17 * i;
    images[i].height = 40 - 9 * i;
    images[i].pixels.resize(images[i].width * images[i].height * 3);
    for (size_t p = 0; p < images[i].pixels.size(); ++p) {
      images[i].pixels[p] = static_cast<uint8_t>((p * (7 + i)) % 251);
    }
  }
  ASSERT_OK_AND_ASSIGN(std::vector<float> all, enc->Encode(images));
  ASSERT_EQ(all.size(), 3u * 3 * 32);
  ASSERT_OK_AND_ASSIGN(std::vector<float> last, enc->Encode({images[2]}));
  for (size_t j = 0; j < last.size(); ++j) {
    ASSERT_NEAR(last[j], all[2 * 96 + j], 1e-5);
  }
  float diff = 0;
  for (size_t j = 64; j < 96; ++j) diff += std::fabs(all[j] - all[96 + j]);
  EXPECT_GT(diff, 1e-3);
  images[0].pixels.pop_back();
  EXPECT_THAT(enc->Encode(images), StatusIs(absl::StatusCode::kInvalidArgument));
  o.config.num_channels = 1;
  o.config.image_mean = {0.5f};
  o.config.image_std = {0.5f};
  EXPECT_THAT(CreateViTImageEncoder(o), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace recsys
