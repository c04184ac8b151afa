#include "retrieval/collection.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <limits>
#include <cmath>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retrieval/snapshot.h"
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


// --- Hardening (issue 11) ---

std::set<std::string> Keys(const CollectionVersion& v) {
  std::set<std::string> out;
  for (int64_t i = 0; i < v.size(); ++i) out.emplace(v.key(i));
  return out;
}

TEST(CollectionHardeningTest, RollbackResetsTheBaseAndSurvivesRestart) {
  const std::string dir = FreshTestDir("h_rollback");
  {
    ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), Options(dir, 3)));
    ASSERT_OK(c->Upsert(MakeEntries(0, 10, kDim, 1)));
    ASSERT_OK(c->PublishAndWait(0).status());  // 1: key0..9
    ASSERT_OK(c->Upsert(MakeEntries(10, 10, kDim, 2)));
    ASSERT_OK(c->PublishAndWait(0).status());  // 2: key0..19
    ASSERT_OK(c->Rollback(1).status());
    ASSERT_OK(c->Upsert(MakeEntries(100, 1, kDim, 3)));
    EXPECT_EQ(c->Status().staging_entries, 11);
    ASSERT_OK_AND_ASSIGN(VersionStatus v3, c->PublishAndWait(0));
    EXPECT_EQ(v3.version, 3);
    ASSERT_OK_AND_ASSIGN(auto live, c->GetVersion(0));
    std::set<std::string> keys = Keys(*live);
    EXPECT_EQ(keys.size(), 11u);
    EXPECT_TRUE(keys.count("key100"));
    EXPECT_FALSE(keys.count("key15"));  // rolled back: does not come back
    ASSERT_OK(c->Rollback(1).status());
  }
  // The rolled-back version stays live across a restart (no roll forward).
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Open(Options(dir, 3)));
  ASSERT_OK_AND_ASSIGN(auto live, c->GetVersion(0));
  EXPECT_EQ(live->version(), 1);
  EXPECT_EQ(c->Status().staging_entries, 10);
  ASSERT_OK(c->GetVersion(3).status());
}

// kill -9 between a snapshot's rename and the LIVE update: the version is
// complete on disk and LIVE names the previous one. Restart finishes the
// publish; the trainer's retry of the same number succeeds.
TEST(CollectionHardeningTest, APublishCutShortIsFinishedAndItsRetrySucceeds) {
  const std::string dir = FreshTestDir("h_cut");
  {
    ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), Options(dir, 5)));
    ASSERT_OK(c->Upsert(MakeEntries(0, 10, kDim, 1)));
    ASSERT_OK(c->PublishAndWait(12).status());
    ASSERT_OK(c->Upsert(MakeEntries(10, 10, kDim, 2)));
    ASSERT_OK(c->PublishAndWait(13).status());
  }
  ASSERT_OK(WriteFileAtomically(dir + "/LIVE", LiveToJson({12, false})));
  {
    // The same cut after a Rollback from 13 to 12: 13 stays rolled back.
    ASSERT_OK(WriteFileAtomically(dir + "/LIVE", LiveToJson({12, true, 13})));
    ASSERT_OK_AND_ASSIGN(auto c, Collection::Open(Options(dir, 5)));
    EXPECT_EQ(c->Status().live_version, 12);
    // A publish after that rollback, cut short: 14 is rolled forward.
    ASSERT_OK(c->Upsert(MakeEntries(50, 1, kDim, 5)));
    ASSERT_OK(c->PublishAndWait(14).status());
  }
  ASSERT_OK(WriteFileAtomically(dir + "/LIVE", LiveToJson({12, true, 13})));
  {
    ASSERT_OK_AND_ASSIGN(auto c, Collection::Open(Options(dir, 5)));
    EXPECT_EQ(c->Status().live_version, 14);
    ASSERT_OK(c->Rollback(13).status());
  }
  ASSERT_OK(WriteFileAtomically(dir + "/LIVE", LiveToJson({12, false})));
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Open(Options(dir, 5)));
  ASSERT_OK_AND_ASSIGN(auto live, c->GetVersion(0));
  EXPECT_EQ(live->version(), 14);
  EXPECT_EQ(live->size(), 11);  // 12's 10 entries + key50
  ASSERT_OK_AND_ASSIGN(VersionStatus retry, c->PublishAndWait(14));
  EXPECT_EQ(retry.version, 14);
  EXPECT_EQ(retry.state, VersionState::kLive);
  EXPECT_EQ(retry.entries, 11);
}

// Every byte of every metadata file the collection writes, flipped: the
// damage is refused loudly (Open fails, or the version is FAILED and not
// served), never loaded as something else.
TEST(CollectionHardeningTest, EveryByteFlipInMetadataIsRefused) {
  const std::string dir = FreshTestDir("h_flip");
  {
    ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), Options(dir)));
    ASSERT_OK(c->Upsert(MakeEntries(0, 10, kDim, 1)));
    ASSERT_OK(c->PublishAndWait(12).status());
    ASSERT_OK(c->Upsert(MakeEntries(10, 10, kDim, 2)));
    ASSERT_OK(c->PublishAndWait(13).status());
    ASSERT_OK(c->Upsert(MakeEntries(20, 5, kDim, 3)));  // staged, unpublished
  }
  const std::string manifest = "versions/v00000000000000000013/MANIFEST.json";
  for (const std::string& file : {std::string("collection.json"),
                                 std::string("LIVE"), manifest}) {
    const std::string path = dir + "/" + file;
    ASSERT_OK_AND_ASSIGN(const std::string original, ReadFileToString(path));
    for (size_t at = 0; at < original.size(); ++at) {
      for (char mask : {char(0x01)}) {
        std::string damaged = original;
        damaged[at] ^= mask;
        ASSERT_OK(WriteFileAtomically(path, damaged));
        absl::StatusOr<std::unique_ptr<Collection>> c =
            Collection::Open(Options(dir));
        if (!c.ok()) continue;  // refused loudly
        // Only the manifest's damage may leave the collection open, with
        // version 13 FAILED and the previous one served.
        EXPECT_EQ(file, manifest) << file << " byte " << at;
        CollectionStatus st = (*c)->Status();
        bool failed = false;
        for (const VersionStatus& v : st.versions) {
          if (v.version == 13) failed = v.state == VersionState::kFailed;
        }
        EXPECT_TRUE(failed) << file << " byte " << at;
        EXPECT_EQ(st.live_version, 12) << file << " byte " << at;
      }
    }
    ASSERT_OK(WriteFileAtomically(path, original));
  }
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Open(Options(dir)));
  EXPECT_EQ(c->Status().live_version, 13);
  EXPECT_EQ(c->Status().staging_entries, 25);
}

TEST(CollectionHardeningTest, CorruptStagingLogDegradesUntilSalvaged) {
  const std::string dir = FreshTestDir("h_degraded");
  {
    ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), Options(dir)));
    ASSERT_OK(c->Upsert(MakeEntries(0, 10, kDim, 1)));
    ASSERT_OK(c->PublishAndWait(0).status());
    for (int i = 0; i < 3; ++i) ASSERT_OK(c->Upsert(MakeEntries(100 + 10 * i, 10, kDim, i)));
  }
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListDirectory(dir));
  std::string log;
  for (const std::string& n : names) {
    if (absl::StartsWith(n, "staging-")) {
      ASSERT_OK_AND_ASSIGN(std::string b, ReadFileToString(dir + "/" + n));
      if (!b.empty()) log = dir + "/" + n;
    }
  }
  ASSERT_FALSE(log.empty());
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(log));
  bytes[30] ^= 0x01;  // inside the first record
  ASSERT_OK(WriteFileAtomically(log, bytes));
  {
    ASSERT_OK_AND_ASSIGN(auto c, Collection::Open(Options(dir)));
    CollectionStatus st = c->Status();
    EXPECT_THAT(st.error, AllOf(HasSubstr("staging log corrupt"),
                                HasSubstr("fails its checksum"),
                                HasSubstr("2 valid records replayed")));
    EXPECT_OK(c->GetVersion(0).status());  // still serves
    EXPECT_THAT(c->Upsert(MakeEntries(500, 1, kDim, 9)),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("DEGRADED")));
    EXPECT_THAT(c->Delete({"key1"}).status(),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(c->PublishAndWait(0).status(),
                StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  // Nothing was dropped: the file is as it was until the operator salvages.
  ASSERT_OK_AND_ASSIGN(std::string after, ReadFileToString(log));
  EXPECT_EQ(after, bytes);
  ASSERT_OK_AND_ASSIGN(StagingReplay salvaged, StagingLog::Salvage(dir, kDim, 0));
  EXPECT_EQ(salvaged.records, 2);
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Open(Options(dir)));
  EXPECT_TRUE(c->Status().error.empty());
  EXPECT_EQ(c->Status().staging_entries, 30);
  ASSERT_OK(c->PublishAndWait(0).status());
}

// Stored rows and queries are finite for every metric and index, whatever
// finite magnitudes the client sends; what cannot be kept finite is
// refused with INVALID_ARGUMENT.
TEST(CollectionHardeningTest, DenormalAndExtremeVectorsStayFiniteEverywhere) {
  const std::vector<std::string> factories = {"Flat", "HNSW16", "IVF4,Flat", "PQ4",
                                              "SQ8"};
  for (Metric metric : {Metric::kInnerProduct, Metric::kL2, Metric::kCosine}) {
    for (const std::string& factory : factories) {
      const std::string where = absl::StrCat(MetricName(metric), " ", factory);
      const std::string dir = FreshTestDir("h_finite");
      ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(
                                       TestConfig("c", kDim, factory, metric),
                                       Options(dir)));
      ASSERT_OK(c->Upsert(MakeEntries(0, 400, kDim, 1)));
      std::vector<Entry> special(3);
      special[0].key = "denormal";
      special[0].vector.assign(kDim, 1e-40f);
      special[1].key = "tiny";
      special[1].vector.assign(kDim, 0.0f);
      special[1].vector[0] = 1.4e-45f;
      special[2].key = "large";
      special[2].vector.assign(kDim, 1e17f);
      ASSERT_OK(c->Upsert(special)) << where;
      std::vector<Entry> huge(1);
      huge[0].key = "huge";
      huge[0].vector.assign(kDim, 3e38f);
      if (metric == Metric::kCosine) {
        EXPECT_OK(c->Upsert(huge)) << where;
      } else {
        EXPECT_THAT(c->Upsert(huge), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("squared norm")))
            << where;
      }
      ASSERT_OK(c->PublishAndWait(0).status()) << where;
      ASSERT_OK_AND_ASSIGN(auto v, c->GetVersion(0));
      for (int64_t i = 0; i < v->size(); ++i) {
        for (float x : v->vector(i)) ASSERT_TRUE(std::isfinite(x)) << where << " row " << i;
      }
      for (const Entry& e : special) {
        std::vector<float> q = e.vector;
        ASSERT_OK(ValidateVector(v->config(), "q", q)) << where;
        for (float x : q) ASSERT_TRUE(std::isfinite(x)) << where;
        auto r = v->Search({VersionQuery{q.data(), 5, {}}}, {});
        ASSERT_OK(r.status()) << where << " " << e.key;
        ASSERT_FALSE((*r)[0].empty()) << where << " " << e.key;
        for (const SearchHit& h : (*r)[0]) {
          EXPECT_TRUE(std::isfinite(h.score)) << where << " " << e.key;
        }
      }
      if (metric == Metric::kCosine && factory == "Flat") {
        // The denormal entry is a unit vector: its own query finds it.
        std::vector<float> q(kDim, 1e-40f);
        ASSERT_OK(ValidateVector(v->config(), "q", q));
        auto r = v->Search({VersionQuery{q.data(), 1, {}}}, {});
        ASSERT_OK(r.status());
        EXPECT_NEAR((*r)[0][0].score, 1.0f, 1e-4);
      }
    }
  }
}

TEST(CollectionHardeningTest, BuildsOverTheirBudgetFailTheirVersion) {
  const std::string dir = FreshTestDir("h_budget");
  CollectionOptions o = Options(dir);
  o.max_build_bytes = 64 << 10;  // 64 KB
  ASSERT_OK_AND_ASSIGN(auto c, Collection::Create(TestConfig("c", kDim), o));
  ASSERT_OK(c->Upsert(MakeEntries(0, 3000, kDim, 1)));
  EXPECT_THAT(c->PublishAndWait(0).status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("build budget")));
  EXPECT_EQ(c->Status().staging_entries, 3000);  // nothing lost

  const std::string dir2 = FreshTestDir("h_budget_time");
  CollectionOptions o2 = Options(dir2);
  o2.max_build_time = absl::Milliseconds(1);
  ASSERT_OK_AND_ASSIGN(auto c2,
                       Collection::Create(TestConfig("c", kDim, "HNSW16"), o2));
  ASSERT_OK(c2->Upsert(MakeEntries(0, 20000, kDim, 1)));
  absl::StatusOr<VersionStatus> r = c2->PublishAndWait(0);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kDeadlineExceeded,
                                   HasSubstr("time budget")));
  CollectionStatus st = c2->Status();
  ASSERT_EQ(st.versions.size(), 1u);
  EXPECT_EQ(st.versions[0].state, VersionState::kFailed);
  EXPECT_EQ(st.staging_entries, 20000);
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
