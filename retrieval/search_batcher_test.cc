#include "retrieval/search_batcher.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retrieval/test_util.h"

namespace recsys {
namespace retrieval {
namespace {

constexpr int kDim = 16;

std::shared_ptr<const CollectionVersion> Version(int64_t n) {
  EntryTable t;
  for (Entry& e : MakeEntries(0, n, kDim, 1)) {
    t.keys.push_back(e.key);
    t.payloads.push_back(e.payload);
    t.vectors.insert(t.vectors.end(), e.vector.begin(), e.vector.end());
  }
  auto v = CollectionVersion::Build(1, TestConfig("c", kDim), std::move(t));
  EXPECT_OK(v.status());
  return *v;
}

TEST(SearchBatcherTest, ConcurrentQueriesCoalesceAndGetTheirOwnAnswers) {
  auto version = Version(20000);
  SearchBatcher::Options o;
  o.max_batch_size = 32;
  o.num_threads = 1;
  o.max_wait = absl::Milliseconds(2);
  ASSERT_OK_AND_ASSIGN(auto batcher, SearchBatcher::Create(o));
  const int kQueries = 64;
  absl::Mutex mu;
  int finished = 0, max_batch = 0, wrong = 0;
  for (int i = 0; i < kQueries; ++i) {
    BatchQuery q;
    auto v = version->vector(i);
    q.vector.assign(v.begin(), v.end());
    q.k = 3;
    if (i % 2 == 1) q.exclude_ids = {i};  // odd queries leave themselves out
    batcher->Submit(version, {}, std::move(q),
                    [&, i](absl::StatusOr<std::vector<SearchHit>> hits, int batch) {
                      absl::MutexLock l(&mu);
                      ++finished;
                      max_batch = std::max(max_batch, batch);
                      EXPECT_LE(batch, 32);
                      if (!hits.ok() || hits->size() != 3) {
                        ++wrong;
                        return;
                      }
                      const bool self_first = (*hits)[0].id == i;
                      if (self_first != (i % 2 == 0)) ++wrong;
                    });
  }
  absl::MutexLock l(&mu);
  mu.Await(absl::Condition(+[](int* f) { return *f == kQueries; }, &finished));
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(max_batch, 1);
}

TEST(SearchBatcherTest, DifferentOptionsAreNotMixed) {
  auto version = Version(500);
  ASSERT_OK_AND_ASSIGN(auto batcher, SearchBatcher::Create({}));
  VersionSearchOptions odd;
  odd.payload_filter = {{"parity", "odd"}};
  absl::Mutex mu;
  int finished = 0, wrong = 0;
  for (int i = 0; i < 40; ++i) {
    BatchQuery q;
    auto v = version->vector(i);
    q.vector.assign(v.begin(), v.end());
    q.k = 5;
    const bool filtered = i % 2 == 0;
    batcher->Submit(version, filtered ? odd : VersionSearchOptions(), std::move(q),
                    [&, filtered](absl::StatusOr<std::vector<SearchHit>> hits, int) {
                      absl::MutexLock l(&mu);
                      ++finished;
                      if (!hits.ok()) {
                        ++wrong;
                        return;
                      }
                      for (const SearchHit& h : *hits) {
                        if (filtered && h.id % 2 == 0) ++wrong;
                      }
                    });
  }
  absl::MutexLock l(&mu);
  mu.Await(absl::Condition(+[](int* f) { return *f == 40; }, &finished));
  EXPECT_EQ(wrong, 0);
}

TEST(SearchBatcherTest, ExpiredQueriesAreNotSearched) {
  auto version = Version(100);
  ASSERT_OK_AND_ASSIGN(auto batcher, SearchBatcher::Create({}));
  absl::Mutex mu;
  bool finished = false;
  absl::Status status;
  BatchQuery q;
  auto v = version->vector(0);
  q.vector.assign(v.begin(), v.end());
  q.deadline = absl::Now() - absl::Seconds(1);
  batcher->Submit(version, {}, std::move(q),
                  [&](absl::StatusOr<std::vector<SearchHit>> hits, int) {
                    absl::MutexLock l(&mu);
                    status = hits.status();
                    finished = true;
                  });
  absl::MutexLock l(&mu);
  mu.Await(absl::Condition(&finished));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST(SearchBatcherTest, IdleQueryRunsInlineWhenAsked) {
  auto version = Version(100);
  SearchBatcher::Options o;
  o.run_inline_when_idle = true;
  ASSERT_OK_AND_ASSIGN(auto batcher, SearchBatcher::Create(o));
  bool finished = false;
  int64_t top = -1;
  BatchQuery q;
  auto v = version->vector(42);
  q.vector.assign(v.begin(), v.end());
  q.k = 1;
  batcher->Submit(version, {}, std::move(q),
                  [&](absl::StatusOr<std::vector<SearchHit>> hits, int batch) {
                    ASSERT_OK(hits.status());
                    top = (*hits)[0].id;
                    finished = true;
                  });
  EXPECT_TRUE(finished);  // ran on this thread, before Submit returned
  EXPECT_EQ(top, 42);
}

TEST(SearchBatcherTest, RejectsBadOptions) {
  SearchBatcher::Options o;
  o.max_batch_size = 0;
  EXPECT_THAT(SearchBatcher::Create(o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
