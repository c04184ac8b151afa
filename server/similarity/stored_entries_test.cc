#include "server/similarity/stored_entries.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gtest/gtest.h"

namespace recsys {
namespace similarity {
namespace {

void Fill(int64_t i, StoredEntry* e) {
  e->set_key("k" + std::to_string(i));
  (*e->mutable_payload())["class"] = std::to_string(i % 3);
  e->set_source(std::string(static_cast<size_t>(i % 7), 'a'));
  for (int j = 0; j < 5; ++j) e->add_features(0.25f * i + j);
}

TEST(StoredEntriesTest, RoundTrip) {
  const std::string path = TestTempPath("entries_roundtrip");
  // Over 1 MiB, so that the checksum spans several appended pieces.
  constexpr int64_t kCount = 40'000;
  ASSERT_OK(WriteStoredEntries(path, kCount, Fill));
  ASSERT_OK_AND_ASSIGN(std::vector<StoredEntry> got, ReadStoredEntries(path));
  ASSERT_EQ(got.size(), static_cast<size_t>(kCount));
  for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{12345}, kCount - 1}) {
    StoredEntry want;
    Fill(i, &want);
    EXPECT_EQ(got[i].SerializeAsString(), want.SerializeAsString()) << i;
  }
  ASSERT_OK(WriteStoredEntries(path, 0, Fill));
  ASSERT_OK_AND_ASSIGN(got, ReadStoredEntries(path));
  EXPECT_TRUE(got.empty());
}

TEST(StoredEntriesTest, DamageIsDataLossAndMissingIsNotFound) {
  const std::string path = TestTempPath("entries_damaged");
  ASSERT_OK(WriteStoredEntries(path, 100, Fill));
  ASSERT_OK_AND_ASSIGN(std::string good, ReadFileToString(path));
  for (size_t at : {size_t{3}, size_t{20}, good.size() / 2, good.size() - 13, good.size() - 1}) {
    std::string bad = good;
    bad[at] ^= 0x10;
    ASSERT_OK(WriteFileAtomically(path, bad));
    EXPECT_THAT(ReadStoredEntries(path), StatusIs(absl::StatusCode::kDataLoss)) << at;
  }
  for (size_t keep : {size_t{0}, size_t{10}, good.size() - 1}) {
    ASSERT_OK(WriteFileAtomically(path, good.substr(0, keep)));
    EXPECT_THAT(ReadStoredEntries(path), StatusIs(absl::StatusCode::kDataLoss)) << keep;
  }
  EXPECT_THAT(ReadStoredEntries(TestTempPath("no_such_entries")),
              StatusIs(absl::StatusCode::kNotFound));
}


StagedBatch Batch(int64_t first, int64_t n) {
  StagedBatch b;
  for (int64_t i = first; i < first + n; ++i) Fill(i, b.add_entries());
  return b;
}

std::string FreshDir(absl::string_view name) {
  const std::string dir = TestTempPath(name);
  EXPECT_OK(RemoveRecursively(dir));
  EXPECT_OK(CreateDirectories(dir));
  return dir;
}

struct Replayed {
  std::vector<std::string> keys;  // in replay order
  StagingReplay report;
  std::unique_ptr<StagingLog> log;
};

Replayed Reopen(const std::string& dir, int64_t live) {
  Replayed r;
  absl::StatusOr<std::unique_ptr<StagingLog>> log = StagingLog::Open(
      dir, live,
      [&](StagedBatch b) {
        for (const StoredEntry& e : b.entries()) r.keys.push_back(e.key());
      },
      &r.report);
  EXPECT_OK(log.status());
  if (log.ok()) r.log = std::move(*log);
  return r;
}

std::vector<std::string> Keys(int64_t first, int64_t n) {
  std::vector<std::string> out;
  for (int64_t i = first; i < first + n; ++i) out.push_back("k" + std::to_string(i));
  return out;
}

TEST(StagingLogTest, AppendReplayAndStartOverAfterPublish) {
  const std::string dir = FreshDir("staging_roundtrip");
  {
    Replayed r = Reopen(dir, 0);
    EXPECT_TRUE(r.keys.empty());
    ASSERT_OK(r.log->Append(Batch(0, 3)));
    ASSERT_OK(r.log->Append(Batch(3, 2)));
  }
  const std::string path = JoinPath(dir, StagingLogName(0));
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(path));
  {
    Replayed r = Reopen(dir, 0);
    EXPECT_EQ(r.keys, Keys(0, 5));
    EXPECT_EQ(r.report.records, 2);
    EXPECT_EQ(r.report.torn_tail_bytes, 0);
    EXPECT_EQ(r.report.damage, "");
    // Publish made version 4 live with every staged batch.
    ASSERT_OK(r.log->StartOver(4));
    EXPECT_FALSE(PathExists(path));
    ASSERT_OK(r.log->Append(Batch(9, 1)));
  }
  Replayed r = Reopen(dir, 4);
  EXPECT_EQ(r.keys, Keys(9, 1));
  // A crash after the record named version 4 live but before StartOver:
  // the older file is covered by version 4, so it is dropped, not replayed.
  r.log.reset();
  ASSERT_OK(WriteFileAtomically(path, bytes));
  r = Reopen(dir, 4);
  EXPECT_EQ(r.keys, Keys(9, 1));
  EXPECT_FALSE(PathExists(path));
}

TEST(StagingLogTest, TornTailIsDroppedAndCutOff) {
  const std::string dir = FreshDir("staging_torn");
  const std::string path = JoinPath(dir, StagingLogName(0));
  size_t two = 0;
  {
    Replayed r = Reopen(dir, 0);
    ASSERT_OK(r.log->Append(Batch(0, 2)));
    ASSERT_OK(r.log->Append(Batch(2, 2)));
    ASSERT_OK_AND_ASSIGN(std::string b, ReadFileToString(path));
    two = b.size();
    ASSERT_OK(r.log->Append(Batch(4, 2)));
  }
  ASSERT_OK_AND_ASSIGN(std::string good, ReadFileToString(path));
  // Cut anywhere inside the third record, or its body zero-filled.
  std::string zeroed = good;
  std::fill(zeroed.begin() + two, zeroed.end(), '\0');
  for (const std::string& torn : {good.substr(0, two + 3), good.substr(0, good.size() - 1),
                                  good.substr(0, two + 8), zeroed}) {
    ASSERT_OK(WriteFileAtomically(path, torn));
    Replayed r = Reopen(dir, 0);
    EXPECT_EQ(r.keys, Keys(0, 4)) << torn.size();
    EXPECT_EQ(r.report.damage, "");
    EXPECT_EQ(r.report.torn_tail_bytes, static_cast<int64_t>(torn.size() - two));
    // The torn bytes are cut off: the next append follows the valid records.
    ASSERT_OK(r.log->Append(Batch(7, 1)));
    r.log.reset();
    r = Reopen(dir, 0);
    std::vector<std::string> want = Keys(0, 4);
    want.push_back("k7");
    EXPECT_EQ(r.keys, want);
    EXPECT_EQ(r.report.torn_tail_bytes, 0);
  }
}

TEST(StagingLogTest, MidFileFlipIsDamageNamingTheOffset) {
  const std::string dir = FreshDir("staging_flip");
  const std::string path = JoinPath(dir, StagingLogName(2));
  size_t one = 0;
  {
    Replayed r = Reopen(dir, 2);
    ASSERT_OK(r.log->Append(Batch(0, 2)));
    ASSERT_OK_AND_ASSIGN(std::string b, ReadFileToString(path));
    one = b.size();
    ASSERT_OK(r.log->Append(Batch(2, 2)));
    ASSERT_OK(r.log->Append(Batch(4, 2)));
  }
  ASSERT_OK_AND_ASSIGN(std::string good, ReadFileToString(path));
  for (size_t at : {one + 1, one + 5, one + 20}) {  // length, checksum, body of record 1
    std::string bad = good;
    bad[at] ^= 0x10;
    ASSERT_OK(WriteFileAtomically(path, bad));
    Replayed r = Reopen(dir, 2);
    EXPECT_NE(r.report.damage.find(path), std::string::npos) << r.report.damage;
    EXPECT_NE(r.report.damage.find(absl::StrCat("record 1 at byte ", one)), std::string::npos)
        << r.report.damage;
    // The records around it are replayed; the damaged file is left as it is.
    std::vector<std::string> want = Keys(0, 2);
    for (const std::string& k : Keys(4, 2)) want.push_back(k);
    EXPECT_EQ(r.keys, want) << at;
    r.log.reset();
    ASSERT_OK_AND_ASSIGN(std::string after, ReadFileToString(path));
    EXPECT_EQ(after, bad);
  }
  // A flipped byte in the last record, whole: damage too (not torn).
  std::string bad = good;
  bad[good.size() - 2] ^= 0x01;
  ASSERT_OK(WriteFileAtomically(path, bad));
  Replayed r = Reopen(dir, 2);
  EXPECT_NE(r.report.damage, "");
  EXPECT_EQ(r.keys, Keys(0, 4));
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
