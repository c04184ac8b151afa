#include "trainer/training/model_export.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace recsys {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ModelExportTest, WritesACompleteVersionDirectory) {
  const std::string base = TestTempPath("versions");
  ModelVersion v;
  v.version = "v1";
  v.model = "iisan";
  v.config_json = "{\"max_len\":10}";
  v.data_fingerprint = "abc";
  v.metrics_json = "{\"test\":{\"hr@10\":0.5}}";
  v.item_keys = {"a", "bb", "c"};
  v.embedding_dim = 2;
  v.item_embeddings = {1, 2, 3, 4, 5, 6};
  v.weights = {{"user_encoder.positions.weight", {1, 2}, {7, 8}},
               {"item_encoder.fuse.bias", {2}, {0, 1}}};
  ASSERT_OK_AND_ASSIGN(std::string dir, ExportModelVersion(base, v));
  EXPECT_EQ(dir, JoinPath(base, "v1"));
  ASSERT_OK_AND_ASSIGN(auto names, ListDirectory(dir));
  EXPECT_THAT(names, ElementsAre("item_embeddings.safetensors", "item_keys.txt",
                                 "manifest.json", "model.safetensors",
                                 "user_encoder.safetensors"));
  ASSERT_OK_AND_ASSIGN(std::string manifest, ReadFileToString(JoinPath(dir, "manifest.json")));
  auto m = nlohmann::json::parse(manifest);
  EXPECT_EQ(m["item_count"], 3);
  EXPECT_EQ(m["dims"]["embedding"], 2);
  EXPECT_EQ(m["config"]["max_len"], 10);
  EXPECT_EQ(m["metrics"]["test"]["hr@10"], 0.5);
  ASSERT_OK_AND_ASSIGN(std::string keys, ReadFileToString(JoinPath(dir, "item_keys.txt")));
  EXPECT_EQ(keys, "a\nbb\nc\n");
  EXPECT_EQ(m["files"]["item_keys.txt"]["crc32c"], Crc32c(keys));

  ASSERT_OK_AND_ASSIGN(auto emb, SafetensorsFile::Open(JoinPath(dir, "item_embeddings.safetensors")));
  ASSERT_OK_AND_ASSIGN(TensorView e, emb->Get("embeddings"));
  EXPECT_EQ(e.shape, (std::vector<int64_t>{3, 2}));
  ASSERT_OK_AND_ASSIGN(auto user, ReadCheckpoint(JoinPath(dir, "user_encoder.safetensors")));
  ASSERT_EQ(user.tensors.size(), 1u);
  EXPECT_EQ(user.tensors[0].name, "user_encoder.positions.weight");

  // No leftovers, and a second export of the same version is refused.
  ASSERT_OK_AND_ASSIGN(auto entries, ListDirectory(base));
  EXPECT_THAT(entries, ElementsAre("v1"));
  EXPECT_THAT(ExportModelVersion(base, v), StatusIs(absl::StatusCode::kAlreadyExists));
  v.version = "../x";
  EXPECT_THAT(ExportModelVersion(base, v), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ModelExportTest, RefusesNonFiniteValuesAndWritesNothing) {
  const std::string base = TestTempPath("garbage_versions");
  ModelVersion v;
  v.version = "1";
  v.model = "iisan";
  v.metrics_json = "{\"test\":{\"hr@10\":1.0}}";
  v.item_keys = {"a", "b"};
  v.embedding_dim = 2;
  v.item_embeddings = {1, 2, std::nanf(""), 4};
  v.weights = {{"user_encoder.positions.weight", {1, 2}, {7, 8}}};
  EXPECT_THAT(ExportModelVersion(base, v),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("item \"b\" dim 0"), HasSubstr("not finite"))));
  v.item_embeddings = {1, 2, 3, 4};
  v.weights[0].values[1] = std::numeric_limits<float>::infinity();
  EXPECT_THAT(ExportModelVersion(base, v),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("user_encoder.positions.weight has non-finite")));
  v.weights[0].values[1] = 8;
  v.metrics_json = "{\"test\":{\"hr@10\":nan}}";
  EXPECT_THAT(ExportModelVersion(base, v),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("metrics_json")));
  EXPECT_FALSE(PathExists(JoinPath(base, "1")));
}

TEST(ModelExportTest, NextModelVersionFollowsTheNewestNumericDirectory) {
  const std::string base = TestTempPath("numbered");
  ASSERT_OK_AND_ASSIGN(int64_t first, NextModelVersion(base));  // missing dir
  EXPECT_EQ(first, 1);
  for (const char* name : {"3", "10", "v1", "007", ".tmp-11-1"}) {
    ASSERT_OK(CreateDirectories(JoinPath(base, name)));
  }
  ASSERT_OK_AND_ASSIGN(int64_t next, NextModelVersion(base));
  EXPECT_EQ(next, 11);  // "007" and temporaries are not version names
}

}  // namespace
}  // namespace recsys
