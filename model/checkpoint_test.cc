#include "model/checkpoint.h"

#include <cstdlib>

#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

TEST(CheckpointTest, RoundTripsAndIsPlainSafetensors) {
  const std::string path = TestTempPath("ckpt.safetensors");
  Checkpoint c;
  c.config_json = "{\"model\":\"iisan\"}";
  c.tensors.push_back({"user_encoder.positions.weight", {2, 3}, {1, 2, 3, 4, 5, 6}});
  c.tensors.push_back({"item_encoder.intra_text.gates.0.weight", {1}, {0.25f}});
  ASSERT_OK(WriteCheckpoint(path, c));
  ASSERT_OK_AND_ASSIGN(Checkpoint r, ReadCheckpoint(path));
  EXPECT_EQ(r.config_json, c.config_json);
  ASSERT_EQ(r.tensors.size(), 2u);
  // An independent reader sees the names, dtype and shapes.
  ASSERT_OK_AND_ASSIGN(auto f, SafetensorsFile::Open(path));
  ASSERT_OK_AND_ASSIGN(TensorView v, f->Get("user_encoder.positions.weight"));
  EXPECT_EQ(v.dtype, DType::kF32);
  EXPECT_EQ(v.shape, (std::vector<int64_t>{2, 3}));
  for (const auto& t : r.tensors) {
    if (t.name == "user_encoder.positions.weight") {
      EXPECT_EQ(t.values, c.tensors[0].values);
    }
  }
  ASSERT_OK(WriteFileAtomically(path + ".bad", "not a checkpoint"));
  EXPECT_FALSE(ReadCheckpoint(path + ".bad").ok());
}

}  // namespace
}  // namespace recsys
