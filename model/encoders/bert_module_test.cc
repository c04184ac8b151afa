#include "model/encoders/bert_module.h"

#include <cstdio>
#include <string>

#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/encoders/test_util.h"
#include "model/encoders/torch_util.h"

namespace recsys {
namespace {

using testing_util::TempPath;

torch::Tensor ToTensor(const TensorView& v) {
  std::vector<float> data(v.num_elements());
  EXPECT_OK(ReadAsFloat(v, 0, v.num_elements(), data.data()));
  return torch::from_blob(data.data(), v.shape, torch::kFloat).clone();
}

torch::Tensor ToLongTensor(const TensorView& v) {
  EXPECT_EQ(v.dtype, DType::kI64);
  torch::Tensor t = torch::empty(v.shape, torch::kLong);
  std::memcpy(t.data_ptr(), v.data, v.size_bytes);
  return t;
}

BertConfig TinyConfig() {
  BertConfig c;
  c.vocab_size = 50;
  c.hidden_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.intermediate_size = 48;
  c.max_position_embeddings = 16;
  return c;
}

// The same weights, loaded from the same safetensors file, through an
// independent float64 plain-torch forward pass in Python.
TEST(BertModuleTest, MatchesPythonReferenceTo1e4) {
  if (!testing_util::PythonHasTorch()) {
    GTEST_SKIP() << "/usr/bin/python3 lacks torch/numpy (Debian python3-torch)";
  }
  const std::string dir = TempPath("bert_ref", /*make_dir=*/true);
  ASSERT_EQ(testing_util::RunPython(
                "model/encoders/testdata/bert_reference.py", dir),
            0);
  ASSERT_OK_AND_ASSIGN(std::string config_text,
                       ReadFileToString(JoinPath(dir, "config.json")));
  ASSERT_OK_AND_ASSIGN(BertConfig config, ParseBertConfig(config_text));
  EXPECT_EQ(config.num_hidden_layers, 3);

  Bert model(config);
  model->eval();
  int unused = -1;
  ASSERT_OK(LoadHfWeights(JoinPath(dir, "model.safetensors"), "bert.",
                          model->HfParameters(), &unused));
  EXPECT_EQ(unused, 2);  // pooler weight and bias

  ASSERT_OK_AND_ASSIGN(auto ref,
                       SafetensorsFile::Open(JoinPath(dir, "reference.safetensors")));
  ASSERT_OK_AND_ASSIGN(TensorView ids_view, ref->Get("input_ids"));
  ASSERT_OK_AND_ASSIGN(TensorView mask_view, ref->Get("attention_mask"));
  ASSERT_OK_AND_ASSIGN(TensorView expected_view, ref->Get("expected"));
  const torch::Tensor expected = ToTensor(expected_view);

  torch::InferenceMode guard;
  const torch::Tensor got =
      model->forward(ToLongTensor(ids_view), ToLongTensor(mask_view));
  ASSERT_EQ(got.sizes(), expected.sizes());
  EXPECT_EQ(got.size(1), 4);  // embeddings + 3 layers
  const double max_diff = (got - expected).abs().max().item<double>();
  RecordProperty("max_abs_diff", std::to_string(max_diff));
  std::printf("max |C++ - reference| = %.3g\n", max_diff);
  EXPECT_LT(max_diff, 1e-4) << "max |C++ - reference| = " << max_diff;
  // Guard against a vacuous comparison (e.g. all-zero states).
  EXPECT_GT(expected.abs().mean().item<double>(), 0.1);

  // Mean pooling over the last layer; the rows have 9, 5, 2, 9 real tokens
  // and junk ids under the mask.
  ASSERT_OK_AND_ASSIGN(TensorView mean_view, ref->Get("expected_mean"));
  const torch::Tensor expected_mean = ToTensor(mean_view);
  const torch::Tensor mask = ToLongTensor(mask_view);
  const torch::Tensor hidden = model->last_hidden_state(ToLongTensor(ids_view), mask);
  EXPECT_EQ(hidden.size(1), mask.size(1));
  const torch::Tensor mean = MaskedMean(hidden, mask);
  ASSERT_EQ(mean.sizes(), expected_mean.sizes());
  const double mean_diff = (mean - expected_mean).abs().max().item<double>();
  EXPECT_LT(mean_diff, 1e-4) << "max |C++ mean - reference| = " << mean_diff;
  // The CLS row of the full last layer is the forward pass's last state.
  EXPECT_LT((hidden.select(1, 0) - got.select(1, 3)).abs().max().item<double>(), 1e-5);
  // An unmasked mean would differ (junk under the mask): the mask matters.
  EXPECT_GT((hidden.mean(1) - expected_mean).abs().max().item<double>(), 1e-2);
}

TEST(BertModuleTest, PaddingDoesNotChangeStates) {
  Bert model(TinyConfig());
  InitStandinWeights(model->HfParameters(), 7);
  torch::InferenceMode guard;
  const torch::Tensor alone = model->forward(
      torch::tensor({{2, 10, 11, 3}}, torch::kLong), torch::ones({1, 4}, torch::kLong));
  const torch::Tensor batch = model->forward(
      torch::tensor({{2, 10, 11, 3, 40, 41}, {2, 5, 6, 7, 8, 3}}, torch::kLong),
      torch::tensor({{1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1}}, torch::kLong));
  EXPECT_EQ(alone.sizes(), (std::vector<int64_t>{1, 3, 32}));
  EXPECT_TRUE(torch::allclose(alone[0], batch[0], 1e-5, 1e-5));
  EXPECT_FALSE(torch::allclose(batch[0], batch[1], 1e-3, 1e-3));
}

TEST(BertModuleTest, StandinIsDeterministicPerSeed) {
  Bert a(TinyConfig()), b(TinyConfig()), c(TinyConfig());
  InitStandinWeights(a->HfParameters(), 42);
  InitStandinWeights(b->HfParameters(), 42);
  InitStandinWeights(c->HfParameters(), 43);
  EXPECT_EQ(FingerprintWeights(a->HfParameters(), "x"),
            FingerprintWeights(b->HfParameters(), "x"));
  EXPECT_NE(FingerprintWeights(a->HfParameters(), "x"),
            FingerprintWeights(c->HfParameters(), "x"));
  EXPECT_NE(FingerprintWeights(a->HfParameters(), "x"),
            FingerprintWeights(a->HfParameters(), "y"));
  // HF initialisation: LayerNorm 1/0, biases 0.
  for (const auto& [name, t] : a->HfParameters()) {
    if (name == "encoder.layer.1.output.LayerNorm.weight") {
      EXPECT_TRUE(torch::all(t == 1).item<bool>());
    }
    if (name == "encoder.layer.0.attention.self.query.bias") {
      EXPECT_TRUE(torch::all(t == 0).item<bool>());
    }
  }
}

TEST(BertModuleTest, WeightsRoundTripAndLoadErrors) {
  Bert a(TinyConfig());
  InitStandinWeights(a->HfParameters(), 5);
  const std::string path = TempPath("tiny_bert.safetensors");
  ASSERT_OK(SaveHfWeights(path, "bert.", a->HfParameters()));
  Bert b(TinyConfig());
  ASSERT_OK(LoadHfWeights(path, "bert.", b->HfParameters()));
  EXPECT_EQ(FingerprintWeights(a->HfParameters(), ""),
            FingerprintWeights(b->HfParameters(), ""));

  // A BertModel export has no "bert." prefix: accepted too.
  const std::string bare = TempPath("tiny_bert_bare.safetensors");
  ASSERT_OK(SaveHfWeights(bare, "", a->HfParameters()));
  Bert e(TinyConfig());
  ASSERT_OK(LoadHfWeights(bare, "bert.", e->HfParameters()));
  EXPECT_EQ(FingerprintWeights(a->HfParameters(), ""),
            FingerprintWeights(e->HfParameters(), ""));

  BertConfig wider = TinyConfig();
  wider.intermediate_size = 64;
  Bert c(wider);
  EXPECT_THAT(LoadHfWeights(path, "bert.", c->HfParameters()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("intermediate.dense.weight")));
  BertConfig deeper = TinyConfig();
  deeper.num_hidden_layers = 3;
  Bert d(deeper);
  EXPECT_THAT(LoadHfWeights(path, "bert.", d->HfParameters()),
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::HasSubstr("encoder.layer.2.")));
}

}  // namespace
}  // namespace recsys
