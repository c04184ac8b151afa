// Resume: a run stopped after an epoch and continued from its epoch
// checkpoint ends with the same weights and metrics as an uninterrupted run
// with the same seed.
#include "trainer/training/epoch_checkpoint.h"

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "trainer/training/test_util.h"
#include "trainer/training/trainer.h"

namespace recsys {
namespace {

TrainerOptions Small() {
  TrainerOptions o;
  o.embedding_dim = 16;
  o.bottleneck = 8;
  o.ffn_dim = 32;
  o.batch_size = 32;
  o.max_len = 6;
  o.epochs = 3;
  o.patience = 5;
  o.dropout = 0.3;  // makes the restored random generator matter
  o.seed = 11;
  o.num_threads = 1;
  o.log_interval = absl::ZeroDuration();
  return o;
}

using EpochCheckpointTest = TinyCatalogTest;

TEST_F(EpochCheckpointTest, ResumedRunEqualsUninterruptedRun) {
  ASSERT_OK_AND_ASSIGN(auto whole, Trainer::Create(Small(), &catalog_.data, store_.get()));
  ASSERT_OK_AND_ASSIGN(TrainResult expected, whole->Train());
  ASSERT_OK_AND_ASSIGN(auto expected_params, whole->Parameters());

  const std::string dir = JoinPath(catalog_.dir, "resume_state");
  RemoveRecursively(dir).IgnoreError();
  TrainerOptions stopped = Small();
  stopped.resume_dir = dir;
  stopped.on_progress = [](const TrainProgress& p) -> absl::Status {
    if (p.finished_epoch != nullptr && p.epoch == 1) return absl::CancelledError("stop");
    return absl::OkStatus();
  };
  ASSERT_OK_AND_ASSIGN(auto first, Trainer::Create(stopped, &catalog_.data, store_.get()));
  EXPECT_EQ(first->Train().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(LastCheckpointedEpoch(dir), 1);

  TrainerOptions resumed = Small();
  resumed.resume_dir = dir;
  resumed.seed = 11;
  int first_epoch_seen = 0;
  resumed.on_progress = [&](const TrainProgress& p) -> absl::Status {
    if (first_epoch_seen == 0) first_epoch_seen = p.epoch;
    return absl::OkStatus();
  };
  ASSERT_OK_AND_ASSIGN(auto second, Trainer::Create(resumed, &catalog_.data, store_.get()));
  ASSERT_OK_AND_ASSIGN(TrainResult got, second->Train());
  EXPECT_EQ(first_epoch_seen, 2);  // epoch 1 was not trained again
  EXPECT_EQ(LastCheckpointedEpoch(dir), 3);
  ASSERT_EQ(got.epochs.size(), expected.epochs.size());
  for (size_t i = 0; i < got.epochs.size(); ++i) {
    EXPECT_EQ(got.epochs[i].loss, expected.epochs[i].loss) << "epoch " << i + 1;
    EXPECT_EQ(got.epochs[i].validation.ToJson(), expected.epochs[i].validation.ToJson());
  }
  EXPECT_EQ(got.best_epoch, expected.best_epoch);
  EXPECT_EQ(got.test.ToJson(), expected.test.ToJson());
  ASSERT_OK_AND_ASSIGN(auto got_params, second->Parameters());
  ASSERT_EQ(got_params.size(), expected_params.size());
  for (size_t i = 0; i < got_params.size(); ++i) {
    EXPECT_EQ(got_params[i].values, expected_params[i].values) << got_params[i].name;
  }
}

TEST_F(EpochCheckpointTest, EmptyDirectoryStartsFresh) {
  const std::string dir = JoinPath(catalog_.dir, "fresh_state");
  RemoveRecursively(dir).IgnoreError();
  EXPECT_EQ(LastCheckpointedEpoch(dir), 0);
  TrainerOptions o = Small();
  o.epochs = 1;
  o.resume_dir = dir;
  ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(o, &catalog_.data, store_.get()));
  ASSERT_OK_AND_ASSIGN(TrainResult r, t->Train());
  EXPECT_EQ(r.epochs.size(), 1u);
  EXPECT_EQ(LastCheckpointedEpoch(dir), 1);
}

}  // namespace
}  // namespace recsys
