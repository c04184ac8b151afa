#include "retrieval/collection.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <limits>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retrieval/test_util.h"

namespace recsys {
namespace retrieval {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
constexpr int kDim = 8;

CollectionOptions Options(const std::string& dir, int keep = 2) {
  CollectionOptions o;
  o.dir = dir;
  o.versions_to_keep = keep;
  return o;
}

std::vector<std::string> TopKeys(const CollectionVersion& v,
                                 const std::vector<float>& q, int k) {
  auto r = v.Search({VersionQuery{q.data(), k, {}}}, {});
  EXPECT_OK(r.status());
  std::vector<std::string> keys;
  for (const SearchHit& h : (*r)[0]) keys.emplace_back(v.key(h.id));
  return keys;
}

TEST(CollectionTest, NothingIsVisibleUntilPublished) {
  const std::string dir = FreshTestDir("c1");
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), Options(dir)));
  EXPECT_THAT(c->GetVersion(0).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no published version")));
  ASSERT_OK(c->Upsert(MakeEntries(0, 100, kDim, 1)));
  EXPECT_EQ(c->Status().staging_entries, 100);
  EXPECT_THAT(c->GetVersion(0).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(VersionStatus s, c->PublishAndWait(0));
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.state, VersionState::kLive);
  EXPECT_EQ(s.entries, 100);
  ASSERT_OK_AND_ASSIGN(auto live, c->GetVersion(0));
  EXPECT_EQ(live->version(), 1);
  EXPECT_TRUE(live->Find("key42").has_value());
}

TEST(CollectionTest, ABadBatchIsNotHalfApplied) {
  const std::string dir = FreshTestDir("c0");
  {
    ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), Options(dir)));
    ASSERT_OK(c->Upsert(MakeEntries(0, 5, kDim, 1)));
    std::vector<Entry> bad = MakeEntries(100, 10, kDim, 2);
    bad[9].vector[0] = std::numeric_limits<float>::infinity();
    EXPECT_THAT(c->Upsert(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("entries[9].vector[0]")));
    EXPECT_EQ(c->Status().staging_entries, 5);
  }
  // Nor did it reach the log.
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Open(Options(dir)));
  EXPECT_EQ(c->Status().staging_entries, 5);
  ASSERT_OK_AND_ASSIGN(VersionStatus s, c->PublishAndWait(0));
  EXPECT_EQ(s.entries, 5);
}

TEST(CollectionTest, DeletedAndReplacedEntriesDoNotComeBack) {
  const std::string dir = FreshTestDir("c2");
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), Options(dir, 3)));
  ASSERT_OK(c->Upsert(MakeEntries(0, 50, kDim, 1)));
  ASSERT_OK(c->PublishAndWait(0).status());
  ASSERT_OK_AND_ASSIGN(int64_t deleted, c->Delete({"key3", "key4", "missing"}));
  EXPECT_EQ(deleted, 2);
  // Replace key5's vector and payload.
  std::vector<Entry> replace = MakeEntries(5, 1, kDim, 99);
  replace[0].payload = {{"title", "new"}};
  const std::vector<float> new_vector = replace[0].vector;
  ASSERT_OK(c->Upsert(replace));
  EXPECT_EQ(c->Status().staging_entries, 48);
  ASSERT_OK_AND_ASSIGN(VersionStatus s, c->PublishAndWait(0));
  EXPECT_EQ(s.entries, 48);
  ASSERT_OK_AND_ASSIGN(auto v2, c->GetVersion(2));
  EXPECT_FALSE(v2->Find("key3").has_value());
  EXPECT_FALSE(v2->Find("key4").has_value());
  ASSERT_TRUE(v2->Find("key5").has_value());
  EXPECT_EQ(*FindField(v2->payload(*v2->Find("key5")), "title"), "new");
  EXPECT_EQ(TopKeys(*v2, new_vector, 1), std::vector<std::string>{"key5"});
  // A third version without changes keeps them gone.
  ASSERT_OK(c->Upsert(MakeEntries(100, 1, kDim, 3)));
  ASSERT_OK(c->PublishAndWait(0).status());
  ASSERT_OK_AND_ASSIGN(auto v3, c->GetVersion(0));
  EXPECT_FALSE(v3->Find("key3").has_value());
  EXPECT_EQ(v3->size(), 49);
  // Version 1 is still loaded and unchanged (pinned readers).
  ASSERT_OK_AND_ASSIGN(auto v1, c->GetVersion(1));
  EXPECT_TRUE(v1->Find("key3").has_value());
}

TEST(CollectionTest, StagedReadsSeeAcknowledgedWritesBeforePublish) {
  const std::string dir = FreshTestDir("c_staged");
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), Options(dir)));
  // Nothing published yet: staged reads already see the upserts.
  const std::vector<Entry> first = MakeEntries(0, 10, kDim, 1);
  ASSERT_OK(c->Upsert(first));
  auto got = c->GetStaged({"key1", "nope"});
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(got[0].has_value());
  EXPECT_EQ(got[0]->key, "key1");
  EXPECT_EQ(got[0]->vector, first[1].vector);
  EXPECT_FALSE(got[1].has_value());
  ASSERT_OK(c->PublishAndWait(0).status());
  // After publishing, a delete and a replacement are visible staged only.
  ASSERT_OK(c->Delete({"key2"}).status());
  std::vector<Entry> replace = MakeEntries(3, 1, kDim, 77);
  replace[0].payload = {{"title", "staged"}};
  ASSERT_OK(c->Upsert(replace));
  got = c->GetStaged({"key2", "key3", "key4"});
  EXPECT_FALSE(got[0].has_value());                        // deleted
  ASSERT_TRUE(got[1].has_value());
  EXPECT_EQ(*FindField(got[1]->payload, "title"), "staged");  // replaced
  EXPECT_EQ(got[1]->vector, replace[0].vector);
  ASSERT_TRUE(got[2].has_value());                         // from the head
  EXPECT_EQ(got[2]->vector, first[4].vector);
  ASSERT_OK_AND_ASSIGN(auto live, c->GetVersion(0));
  EXPECT_TRUE(live->Find("key2").has_value());  // the live version unchanged
}

TEST(CollectionTest, VersionNumbersWindowAndRollback) {
  const std::string dir = FreshTestDir("c3");
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), Options(dir, 2)));
  ASSERT_OK(c->Upsert(MakeEntries(0, 20, kDim, 1)));
  ASSERT_OK_AND_ASSIGN(VersionStatus s, c->PublishAndWait(10));
  EXPECT_EQ(s.version, 10);
  // A retry of the same version with nothing staged since: the same
  // content, so the same answer.
  ASSERT_OK_AND_ASSIGN(VersionStatus again, c->PublishAndWait(10));
  EXPECT_EQ(again.version, 10);
  EXPECT_EQ(again.state, VersionState::kLive);
  EXPECT_EQ(again.entries, 20);
  ASSERT_OK_AND_ASSIGN(auto pinned, c->GetVersion(10));
  ASSERT_OK(c->Upsert(MakeEntries(20, 1, kDim, 2)));
  // Different content under an existing number is refused, saying why.
  EXPECT_THAT(c->PublishAndWait(10).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("expected a number above 10"),
                             HasSubstr("version 10 exists, complete"),
                             HasSubstr("1 changes are staged since"))));
  EXPECT_THAT(c->PublishAndWait(9).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("not loaded")));
  ASSERT_OK(c->PublishAndWait(0).status());  // 11
  ASSERT_OK(c->Upsert(MakeEntries(21, 1, kDim, 3)));
  ASSERT_OK(c->PublishAndWait(0).status());  // 12: 10 leaves the window
  EXPECT_THAT(c->GetVersion(10).status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(PathExists(dir + "/versions/v00000000000000000010"));
  EXPECT_EQ(pinned->size(), 20);  // a reader's handle outlives the unload
  EXPECT_TRUE(pinned->Find("key5").has_value());

  ASSERT_OK_AND_ASSIGN(VersionStatus rb, c->Rollback(11));
  EXPECT_EQ(rb.version, 11);
  ASSERT_OK_AND_ASSIGN(auto live, c->GetVersion(0));
  EXPECT_EQ(live->version(), 11);
  EXPECT_THAT(c->Rollback(10).status(), StatusIs(absl::StatusCode::kNotFound,
                                                 HasSubstr("loaded versions: [11, 12]")));
  // The live (rolled back) version survives later publishes.
  ASSERT_OK(c->PublishAndWait(0).status());  // 13
  ASSERT_OK(c->PublishAndWait(0).status());  // 14
  ASSERT_OK(c->GetVersion(14).status());
  CollectionStatus st = c->Status();
  EXPECT_EQ(st.live_version, 14);
}

TEST(CollectionTest, RestartRestoresVersionsLiveAndStaging) {
  const std::string dir = FreshTestDir("c4");
  std::vector<float> q = RandomUnitVectors(1, kDim, 77);
  std::vector<std::string> before;
  {
    ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), Options(dir, 3)));
    ASSERT_OK(c->Upsert(MakeEntries(0, 200, kDim, 1)));
    ASSERT_OK(c->PublishAndWait(0).status());
    ASSERT_OK(c->Upsert(MakeEntries(200, 10, kDim, 2)));
    ASSERT_OK(c->PublishAndWait(0).status());
    ASSERT_OK(c->Rollback(1).status());
    // Acknowledged but unpublished writes.
    ASSERT_OK(c->Upsert(MakeEntries(500, 5, kDim, 3)));
    ASSERT_OK(c->Delete({"key0"}).status());
    ASSERT_OK_AND_ASSIGN(auto live, c->GetVersion(0));
    before = TopKeys(*live, q, 10);
  }
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Open(Options(dir, 3)));
  ASSERT_OK_AND_ASSIGN(auto live, c->GetVersion(0));
  EXPECT_EQ(live->version(), 1);
  EXPECT_EQ(TopKeys(*live, q, 10), before);
  ASSERT_OK(c->GetVersion(2).status());
  CollectionStatus st = c->Status();
  // Rollback resets to version 1: the 10 entries of version 2 are not
  // staged (they stay in version 2, still loaded).
  EXPECT_EQ(st.staging_entries, 200 + 5 - 1);
  ASSERT_OK_AND_ASSIGN(VersionStatus s, c->PublishAndWait(0));
  EXPECT_EQ(s.version, 3);
  EXPECT_EQ(s.entries, 204);
  ASSERT_OK_AND_ASSIGN(auto v3, c->GetVersion(3));
  EXPECT_TRUE(v3->Find("key504").has_value());
  EXPECT_FALSE(v3->Find("key0").has_value());
}

TEST(CollectionTest, CorruptLiveVersionIsRefusedAndThePreviousServed) {
  const std::string dir = FreshTestDir("c5");
  {
    ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), Options(dir)));
    ASSERT_OK(c->Upsert(MakeEntries(0, 30, kDim, 1)));
    ASSERT_OK(c->PublishAndWait(0).status());
    ASSERT_OK(c->Upsert(MakeEntries(30, 30, kDim, 2)));
    ASSERT_OK(c->PublishAndWait(0).status());
  }
  const std::string index = dir + "/versions/v00000000000000000002/index.faiss";
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(index));
  bytes[bytes.size() - 10] ^= 0x20;
  ASSERT_OK(WriteFileAtomically(index, bytes));

  ASSERT_OK_AND_ASSIGN(auto c, Collection::Open(Options(dir)));
  ASSERT_OK_AND_ASSIGN(auto live, c->GetVersion(0));
  EXPECT_EQ(live->version(), 1);
  EXPECT_EQ(live->size(), 30);
  EXPECT_THAT(c->GetVersion(2).status(), StatusIs(absl::StatusCode::kNotFound));
  CollectionStatus st = c->Status();
  ASSERT_EQ(st.versions.size(), 2u);
  EXPECT_EQ(st.versions[1].version, 2);
  EXPECT_EQ(st.versions[1].state, VersionState::kFailed);
  EXPECT_THAT(st.versions[1].error, HasSubstr("index.faiss fails its checksum"));
  // A new publish does not reuse the corrupt version's number.
  ASSERT_OK_AND_ASSIGN(VersionStatus s, c->PublishAndWait(0));
  EXPECT_EQ(s.version, 3);
}

TEST(CollectionTest, FailedBuildKeepsStagingAndLiveVersion) {
  const std::string dir = FreshTestDir("c6");
  CollectionConfig config = TestConfig("c", kDim, "IVF64,Flat");
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(config, Options(dir)));
  ASSERT_OK(c->Upsert(MakeEntries(0, 10, kDim, 1)));  // too few to train
  EXPECT_THAT(c->PublishAndWait(0).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("training vectors")));
  EXPECT_EQ(c->Status().staging_entries, 10);
  ASSERT_OK(c->Upsert(MakeEntries(10, 3000, kDim, 2)));
  ASSERT_OK_AND_ASSIGN(VersionStatus s, c->PublishAndWait(0));
  EXPECT_EQ(s.version, 2);
  EXPECT_EQ(s.entries, 3010);
  CollectionStatus st = c->Status();
  EXPECT_EQ(st.versions.front().state, VersionState::kFailed);
}

TEST(CollectionTest, WritesDuringABuildLandInTheNextVersion) {
  const std::string dir = FreshTestDir("c7");
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim, "HNSW16"), Options(dir)));
  ASSERT_OK(c->Upsert(MakeEntries(0, 3000, kDim, 1)));
  absl::Mutex mu;
  bool done = false;
  ASSERT_OK_AND_ASSIGN(VersionStatus started,
                       c->Publish(0, [&](absl::StatusOr<VersionStatus> r) {
                         EXPECT_OK(r.status());
                         absl::MutexLock l(&mu);
                         done = true;
                       }));
  EXPECT_EQ(started.state, VersionState::kBuilding);
  EXPECT_THAT(c->Publish(0, nullptr).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("still building")));
  ASSERT_OK(c->Upsert(MakeEntries(5000, 2, kDim, 2)));
  ASSERT_OK(c->Delete({"key1"}).status());
  {
    absl::MutexLock l(&mu);
    mu.Await(absl::Condition(&done));
  }
  ASSERT_OK_AND_ASSIGN(auto v1, c->GetVersion(1));
  EXPECT_EQ(v1->size(), 3000);
  EXPECT_EQ(c->Status().staging_entries, 3001);
  ASSERT_OK_AND_ASSIGN(VersionStatus s, c->PublishAndWait(0));
  EXPECT_EQ(s.entries, 3001);
}

// Builds run at the configured nice value, so searches preempt them; the
// publish callback runs on the build thread.
TEST(CollectionTest, BuildsRunAtTheConfiguredNiceValue) {
  const std::string dir = FreshTestDir("c_nice");
  CollectionOptions o = Options(dir);
  o.build_nice = 7;
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), o));
  ASSERT_OK(c->Upsert(MakeEntries(0, 10, kDim, 1)));
  const int caller_nice = getpriority(PRIO_PROCESS, 0);
  absl::Mutex mu;
  bool done = false;
  int build_nice = -100;
  ASSERT_OK(c->Publish(0, [&](absl::StatusOr<VersionStatus> r) {
                EXPECT_OK(r.status());
                const int nice = getpriority(
                    PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
                absl::MutexLock l(&mu);
                build_nice = nice;
                done = true;
              }).status());
  {
    absl::MutexLock l(&mu);
    mu.Await(absl::Condition(&done));
  }
  EXPECT_EQ(build_nice, std::max(7, caller_nice));
  EXPECT_EQ(getpriority(PRIO_PROCESS, 0), caller_nice);  // the caller's unchanged
}

TEST(CollectionTest, ReadersNeverSeeAHalfBuiltVersion) {
  const std::string dir = FreshTestDir("c8");
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), Options(dir)));
  ASSERT_OK(c->Upsert(MakeEntries(0, 100, kDim, 1)));
  ASSERT_OK(c->PublishAndWait(0).status());
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, reads{0};
  std::thread reader([&] {
    while (!stop) {
      auto v = c->GetVersion(0);
      if (!v.ok()) {
        ++bad;
        continue;
      }
      // Version n holds exactly 100 * n entries.
      if ((*v)->size() != 100 * (*v)->version()) ++bad;
      ++reads;
    }
  });
  for (int i = 1; i < 6; ++i) {
    ASSERT_OK(c->Upsert(MakeEntries(100 * i, 100, kDim, i + 1)));
    ASSERT_OK(c->PublishAndWait(0).status());
  }
  stop = true;
  reader.join();
  EXPECT_EQ(bad, 0);
  EXPECT_GT(reads, 0);
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
