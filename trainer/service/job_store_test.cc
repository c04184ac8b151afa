#include "trainer/service/job_store.h"

#include <cstdlib>
#include <string>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = JoinPath(tmp ? tmp : "/tmp", name);
  RemoveRecursively(dir).IgnoreError();
  EXPECT_TRUE(CreateDirectories(dir).ok());
  return JoinPath(dir, "jobs.sqlite");
}

v1::JobSpec TrainSpec(const std::string& interactions) {
  v1::JobSpec spec;
  spec.mutable_train()->set_interactions(interactions);
  spec.mutable_train()->set_epochs(3);
  spec.set_device("cpu");
  return spec;
}

TEST(JobStoreTest, RecordsSurviveReopenWithTransitionsEpochsAndVersion) {
  const std::string path = TempPath("reopen");
  int64_t id = 0;
  {
    ASSERT_OK_AND_ASSIGN(auto store, JobStore::Open(path));
    EXPECT_EQ(store->schema_version(), kJobStoreSchemaVersion);
    ASSERT_OK_AND_ASSIGN(v1::Job job, store->Create(TrainSpec("users.tsv"), v1::JOB_TRAIN, "cpu"));
    id = job.id();
    EXPECT_EQ(job.state(), v1::JOB_QUEUED);
    ASSERT_OK(store->Transition(id, v1::JOB_RUNNING, "started"));
    v1::EpochMetrics e;
    e.set_epoch(1);
    e.set_loss(2.5);
    e.set_validation_hr10(0.25);
    ASSERT_OK(store->AddEpoch(id, e));
    ASSERT_OK(store->SetVersion(id, 7));
    ASSERT_OK(store->Transition(id, v1::JOB_FAILED, "boom", "worker died"));
  }
  ASSERT_OK_AND_ASSIGN(auto store, JobStore::Open(path));
  ASSERT_OK_AND_ASSIGN(v1::Job job, store->Get(id));
  EXPECT_EQ(job.state(), v1::JOB_FAILED);
  EXPECT_EQ(job.error(), "worker died");
  EXPECT_EQ(job.version(), 7);
  EXPECT_EQ(job.spec().train().interactions(), "users.tsv");
  EXPECT_EQ(job.spec().train().epochs(), 3);
  ASSERT_EQ(job.transitions_size(), 3);
  EXPECT_EQ(job.transitions(0).state(), v1::JOB_QUEUED);
  EXPECT_EQ(job.transitions(1).state(), v1::JOB_RUNNING);
  EXPECT_EQ(job.transitions(2).reason(), "boom");
  EXPECT_FALSE(job.started_time().empty());
  EXPECT_FALSE(job.finished_time().empty());
  ASSERT_EQ(job.epochs_size(), 1);
  EXPECT_DOUBLE_EQ(job.epochs(0).validation_hr10(), 0.25);
  ASSERT_OK_AND_ASSIGN(int64_t of, store->JobOfVersion(7));
  EXPECT_EQ(of, id);
  ASSERT_OK_AND_ASSIGN(int64_t max, store->MaxVersion());
  EXPECT_EQ(max, 7);
}

TEST(JobStoreTest, ListPagesNewestFirstAndFilters) {
  ASSERT_OK_AND_ASSIGN(auto store, JobStore::Open(TempPath("list")));
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(v1::Job j, store->Create(TrainSpec("u"), i % 2 ? v1::JOB_BUILD_CACHE
                                                                          : v1::JOB_TRAIN,
                                                  "cpu"));
    if (i == 4) ASSERT_OK(store->Transition(j.id(), v1::JOB_CANCELLED, "x"));
  }
  ASSERT_OK_AND_ASSIGN(auto page, store->List(v1::JOB_STATE_UNSPECIFIED,
                                              v1::JOB_KIND_UNSPECIFIED, 0, 2));
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id(), 5);
  EXPECT_EQ(page[1].id(), 4);
  ASSERT_OK_AND_ASSIGN(page, store->List(v1::JOB_STATE_UNSPECIFIED, v1::JOB_KIND_UNSPECIFIED,
                                         page[1].id(), 10));
  ASSERT_EQ(page.size(), 3u);
  EXPECT_EQ(page[0].id(), 3);
  ASSERT_OK_AND_ASSIGN(page, store->List(v1::JOB_STATE_UNSPECIFIED, v1::JOB_BUILD_CACHE, 0, 10));
  EXPECT_EQ(page.size(), 2u);
  ASSERT_OK_AND_ASSIGN(page, store->List(v1::JOB_CANCELLED, v1::JOB_KIND_UNSPECIFIED, 0, 10));
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].id(), 5);
  ASSERT_OK_AND_ASSIGN(page, store->InStates({v1::JOB_QUEUED}));
  EXPECT_EQ(page.size(), 4u);
  ASSERT_OK_AND_ASSIGN(auto counts, store->CountByKindAndState());
  // Jobs 1, 3, 5 train (5 cancelled), 2 and 4 build_cache.
  EXPECT_EQ((counts[{v1::JOB_TRAIN, v1::JOB_QUEUED}]), 2);
  EXPECT_EQ((counts[{v1::JOB_TRAIN, v1::JOB_CANCELLED}]), 1);
  EXPECT_EQ((counts[{v1::JOB_BUILD_CACHE, v1::JOB_QUEUED}]), 2);
  EXPECT_EQ((counts[{v1::JOB_BUILD_CACHE, v1::JOB_CANCELLED}]), 0);
}

TEST(JobStoreTest, UnknownJobIsNotFoundAndSecondOpenIsRefused) {
  const std::string path = TempPath("lock");
  ASSERT_OK_AND_ASSIGN(auto store, JobStore::Open(path));
  EXPECT_EQ(store->Get(42).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Transition(42, v1::JOB_RUNNING, "").code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::unique_ptr<JobStore>> second = JobStore::Open(path);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(JobStoreTest, WalModeAndMigrationTable) {
  const std::string path = TempPath("wal");
  { ASSERT_OK_AND_ASSIGN(auto store, JobStore::Open(path)); }
  // Reopening applies no migration twice.
  ASSERT_OK_AND_ASSIGN(auto store, JobStore::Open(path));
  EXPECT_EQ(store->schema_version(), 1);
  ASSERT_OK_AND_ASSIGN(std::string header, ReadFileToString(path));
  // SQLite's header bytes 18/19 are 2 in WAL mode.
  ASSERT_GE(header.size(), 20u);
  EXPECT_EQ(header[18], 2);
  EXPECT_EQ(header[19], 2);
}

}  // namespace
}  // namespace recsys
