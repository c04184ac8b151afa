#include "server/serving_model.h"

#include <cstdlib>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/test_util.h"
#include "model/nn/user_encoder.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;

TEST(ServingModelTest, EncodesHistoryLikeTheTrainedEncoder) {
  const std::string base = FreshTestDir("models_encode");
  std::vector<float> emb;
  UserEncoder encoder = ExportTestVersion(base, 3, &emb);
  ASSERT_OK_AND_ASSIGN(auto model, ServingModel::Load(JoinPath(base, "3")));
  EXPECT_EQ(model->version(), 3);
  EXPECT_EQ(model->info().num_items, 5);
  EXPECT_EQ(model->info().embedding_dim, kTestDim);
  EXPECT_EQ(model->RowOf("c"), 2);

  // History b, zzz (unknown), d: the encoder sees [pad, pad, b, d].
  int unknown = -1;
  ASSERT_OK_AND_ASSIGN(std::vector<float> user,
                       model->EncodeUser({"b", "zzz", "d"}, &unknown));
  EXPECT_EQ(unknown, 1);
  torch::NoGradGuard no_grad;
  torch::Tensor table = torch::from_blob(emb.data(), {5, kTestDim}).clone();
  torch::Tensor seq = torch::zeros({1, kTestMaxLen, kTestDim});
  seq[0][2] = table[1];
  seq[0][3] = table[3];
  torch::Tensor valid = torch::tensor({false, false, true, true}).view({1, kTestMaxLen});
  torch::Tensor expected = encoder->forward(seq, valid)[0][kTestMaxLen - 1];
  ASSERT_EQ(user.size(), static_cast<size_t>(kTestDim));
  for (int64_t i = 0; i < kTestDim; ++i) {
    EXPECT_NEAR(user[i], expected[i].item<float>(), 1e-5) << i;
  }

  // Only the newest max_len known items count.
  ASSERT_OK_AND_ASSIGN(auto long_user, model->EncodeUser({"a", "a", "b", "c", "d", "e"}, nullptr));
  ASSERT_OK_AND_ASSIGN(auto short_user, model->EncodeUser({"b", "c", "d", "e"}, nullptr));
  EXPECT_EQ(long_user, short_user);

  EXPECT_THAT(model->EncodeUser({"x", "y"}, &unknown),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("history")));
  EXPECT_EQ(unknown, 2);
}

TEST(ServingModelTest, RefusesDamagedOrMisnamedVersions) {
  const std::string base = FreshTestDir("models_damaged");
  ExportTestVersion(base, 1);
  // One flipped byte in the embeddings fails the manifest's checksum.
  const std::string path = JoinPath(base, "1/item_embeddings.safetensors");
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(path));
  bytes[bytes.size() - 3] ^= 0x40;
  ASSERT_OK(WriteFileAtomically(path, bytes));
  EXPECT_THAT(ServingModel::Load(JoinPath(base, "1")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("CRC-32C")));
  ASSERT_OK(DurableRename(JoinPath(base, "1"), JoinPath(base, "latest")));
  EXPECT_THAT(ServingModel::Load(JoinPath(base, "latest")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a model version")));
}

// A version written by the trainer before model/ existed still serves.
TEST(ServingModelTest, LoadsAVersionWrittenByThePreviousExporter) {
  const std::string dir =
      JoinPath(std::getenv("TEST_SRCDIR"), "recsys/model/testdata/legacy_models/1");
  ASSERT_OK_AND_ASSIGN(auto model, ServingModel::Load(dir));
  EXPECT_EQ(model->version(), 1);
  EXPECT_EQ(model->info().model_kind, "iisan");
  ASSERT_GT(model->info().num_items, 0);
  int unknown = 0;
  ASSERT_OK_AND_ASSIGN(std::vector<float> user, model->EncodeUser({"zz", "SYN00001", "SYN00002"}, &unknown));
  EXPECT_EQ(unknown, 1);
  EXPECT_EQ(static_cast<int64_t>(user.size()), model->info().embedding_dim);
}

}  // namespace
}  // namespace recsys
