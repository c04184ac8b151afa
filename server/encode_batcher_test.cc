// EncodeBatcher with real model versions: coalescing into one forward per
// version, answers equal to encoding alone, deadlines honoured in the queue.
#include "server/encode_batcher.h"

#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/serving_model.h"
#include "server/test_util.h"

namespace recsys {
namespace {

struct Seen {
  absl::Mutex mu;
  std::vector<std::pair<const ServingModel*, std::vector<std::shared_ptr<EncodeTask>>>> batches
      ABSL_GUARDED_BY(mu);
  int tasks ABSL_GUARDED_BY(mu) = 0;

  EncodeBatcher::Sink Sink() {
    return [this](const std::shared_ptr<const ServingModel>& model,
                  std::vector<std::shared_ptr<EncodeTask>> batch) {
      absl::MutexLock lock(&mu);
      tasks += static_cast<int>(batch.size());
      batches.emplace_back(model.get(), std::move(batch));
    };
  }
  void AwaitTasks(int n) {
    absl::MutexLock lock(&mu);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return tasks >= n; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(30)));
  }
};

std::shared_ptr<EncodeTask> Task(std::vector<int64_t> rows,
                                 absl::Time deadline = absl::InfiniteFuture()) {
  auto t = std::make_shared<EncodeTask>();
  t->rows = std::move(rows);
  t->deadline = deadline;
  return t;
}

class EncodeBatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string base = FreshTestDir("encode_batcher_models");
    ExportTestVersion(base, 1);
    ExportTestVersion(base, 2);
    ASSERT_OK_AND_ASSIGN(auto m1, ServingModel::Load(JoinPath(base, "1")));
    ASSERT_OK_AND_ASSIGN(auto m2, ServingModel::Load(JoinPath(base, "2")));
    v1_ = std::move(m1);
    v2_ = std::move(m2);
  }
  std::shared_ptr<const ServingModel> v1_, v2_;
};

TEST_F(EncodeBatcherTest, CoalescesPerVersionAndAnswersAsAlone) {
  Seen seen;
  EncodeBatcher::Options o;
  o.max_batch_size = 4;
  o.max_wait = absl::Seconds(20);  // full batches run at once; never reached
  EncodeBatcher batcher(o, seen.Sink());
  const std::vector<std::vector<int64_t>> users = {{0}, {1, 2}, {4, 3, 2, 1, 0}, {2, 2}};
  std::vector<std::shared_ptr<EncodeTask>> tasks;
  for (const auto& rows : users) {
    tasks.push_back(Task(rows));
    batcher.Submit(v1_, tasks.back());
  }
  for (const auto& rows : users) batcher.Submit(v2_, Task(rows));
  seen.AwaitTasks(8);
  EXPECT_EQ(batcher.forwards(), 2);  // one per version
  absl::MutexLock lock(&seen.mu);
  ASSERT_EQ(seen.batches.size(), 2u);
  for (const auto& [model, batch] : seen.batches) {
    ASSERT_EQ(batch.size(), 4u);
    for (const auto& t : batch) {
      EXPECT_EQ(t->batch_size, 4);
      ASSERT_OK(t->status);
      ASSERT_OK_AND_ASSIGN(auto alone, model->EncodeRows({t->rows}));
      ASSERT_EQ(t->user.size(), alone[0].size());
      for (size_t i = 0; i < alone[0].size(); ++i) EXPECT_NEAR(t->user[i], alone[0][i], 1e-5);
    }
  }
  // The two versions' encoders differ: no task got the other's answer.
  EXPECT_NE(seen.batches[0].second[0]->user, seen.batches[1].second[0]->user);
}

TEST_F(EncodeBatcherTest, ALoneTaskRunsAtOnceWithoutWait) {
  Seen seen;
  EncodeBatcher batcher({}, seen.Sink());  // max_wait 0
  batcher.Submit(v1_, Task({1}));
  seen.AwaitTasks(1);
  EXPECT_EQ(batcher.forwards(), 1);
}

TEST_F(EncodeBatcherTest, AQueuedTaskPastItsDeadlineIsNotEncoded) {
  Seen seen;
  EncodeBatcher::Options o;
  o.max_batch_size = 8;
  o.max_wait = absl::Seconds(20);
  EncodeBatcher batcher(o, seen.Sink());
  // The wait stops at the earliest queued deadline, not after max_wait.
  batcher.Submit(v1_, Task({1}, absl::Now() - absl::Milliseconds(1)));
  seen.AwaitTasks(1);
  absl::MutexLock lock(&seen.mu);
  ASSERT_EQ(seen.batches.size(), 1u);
  EXPECT_EQ(seen.batches[0].second[0]->status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(batcher.forwards(), 0);
}

}  // namespace
}  // namespace recsys
