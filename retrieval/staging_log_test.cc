#include "retrieval/staging_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retrieval/test_util.h"

namespace recsys {
namespace retrieval {
namespace {

constexpr int kDim = 4;

std::vector<StagingRecord> Replay(const std::string& dir, int64_t covered = 0) {
  std::vector<StagingRecord> out;
  auto log = StagingLog::Open(dir, kDim, covered,
                              [&](StagingRecord r) { out.push_back(std::move(r)); });
  EXPECT_OK(log.status());
  return out;
}

TEST(StagingLogTest, ReplaysWholeRecordsInOrder) {
  const std::string dir = FreshTestDir("log");
  {
    ASSERT_OK_AND_ASSIGN(auto log, StagingLog::Open(dir, kDim, 0, [](StagingRecord) {}));
    ASSERT_OK(log->AppendUpserts(MakeEntries(0, 3, kDim, 1)));
    ASSERT_OK(log->AppendDeletes({"key1"}));
    ASSERT_OK_AND_ASSIGN(int64_t old, log->Rotate());
    EXPECT_EQ(old + 1, log->seq());
    ASSERT_OK(log->AppendUpserts(MakeEntries(10, 2, kDim, 2)));
  }
  std::vector<StagingRecord> r = Replay(dir);
  ASSERT_EQ(r.size(), 3u);
  ASSERT_EQ(r[0].upserts.size(), 3u);
  EXPECT_EQ(r[0].upserts[2].key, "key2");
  EXPECT_EQ(r[0].upserts[2].vector, MakeEntries(0, 3, kDim, 1)[2].vector);
  EXPECT_EQ(r[0].upserts[1].payload, MakeEntries(0, 3, kDim, 1)[1].payload);
  EXPECT_EQ(r[1].deletes, std::vector<std::string>{"key1"});
  EXPECT_EQ(r[2].upserts[1].key, "key11");
}

TEST(StagingLogTest, CoveredFilesAreDroppedNotReplayed) {
  const std::string dir = FreshTestDir("logcovered");
  int64_t first;
  {
    ASSERT_OK_AND_ASSIGN(auto log, StagingLog::Open(dir, kDim, 0, [](StagingRecord) {}));
    ASSERT_OK(log->AppendUpserts(MakeEntries(0, 1, kDim, 1)));
    ASSERT_OK_AND_ASSIGN(first, log->Rotate());
    ASSERT_OK(log->AppendUpserts(MakeEntries(5, 1, kDim, 1)));
  }
  std::vector<StagingRecord> r = Replay(dir, first);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].upserts[0].key, "key5");
}

// Restarts without writes must not pile up empty files; files with
// records stay until a version covers them.
TEST(StagingLogTest, RestartsLeaveNoEmptyFilesBehind) {
  const std::string dir = FreshTestDir("logrestarts");
  {
    ASSERT_OK_AND_ASSIGN(auto log, StagingLog::Open(dir, kDim, 0, [](StagingRecord) {}));
    ASSERT_OK(log->AppendUpserts(MakeEntries(0, 2, kDim, 1)));
  }
  for (int restart = 0; restart < 5; ++restart) {
    EXPECT_EQ(Replay(dir).size(), 1u) << restart;
  }
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListDirectory(dir));
  // The file with the record and the one the last Open created.
  EXPECT_EQ(names.size(), 2u) << absl::StrJoin(names, " ");
}

TEST(StagingLogTest, TornTailIsIgnoredAndEarlierRecordsSurvive) {
  const std::string dir = FreshTestDir("logtorn");
  {
    ASSERT_OK_AND_ASSIGN(auto log, StagingLog::Open(dir, kDim, 0, [](StagingRecord) {}));
    ASSERT_OK(log->AppendUpserts(MakeEntries(0, 2, kDim, 1)));
    ASSERT_OK(log->AppendUpserts(MakeEntries(2, 2, kDim, 1)));
  }
  ASSERT_OK_AND_ASSIGN(auto names, ListDirectory(dir));
  const std::string path = dir + "/" + names[0];
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(path));
  // Cut the second record short, as a crash mid-append would.
  ASSERT_OK(WriteFileAtomically(path, bytes.substr(0, bytes.size() - 5)));
  std::vector<StagingRecord> r = Replay(dir);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].upserts.size(), 2u);

  // A flipped byte in a record fails its CRC: that record is not applied.
  bytes[bytes.size() - 3] ^= 0x40;
  const std::string dir2 = FreshTestDir("logcrc");
  ASSERT_OK(WriteFileAtomically(dir2 + "/" + names[0], bytes));
  r = Replay(dir2);
  ASSERT_EQ(r.size(), 1u);
}


// Writes three upsert records (keys 0-2, 3-5, 6-8) into one file; returns
// its path.
std::string ThreeRecords(const std::string& dir) {
  {
    auto log = StagingLog::Open(dir, kDim, 0, [](StagingRecord) {});
    EXPECT_OK(log.status());
    for (int i = 0; i < 3; ++i) {
      EXPECT_OK((*log)->AppendUpserts(MakeEntries(3 * i, 3, kDim, i)));
    }
  }
  auto names = ListDirectory(dir);
  EXPECT_OK(names.status());
  return dir + "/" + (*names)[0];
}

StagingReplay ReplayReport(const std::string& dir, std::vector<std::string>* keys) {
  StagingReplay report;
  auto log = StagingLog::Open(
      dir, kDim, 0,
      [&](StagingRecord r) {
        for (const Entry& e : r.upserts) keys->push_back(e.key);
      },
      &report);
  EXPECT_OK(log.status());
  return report;
}

// The example: one flipped byte in the first record used to drop
// every record of the file with a warning. Every byte of the first record
// is tried: each flip is corruption (never a torn tail), and the records
// after it are still replayed.
TEST(StagingLogTest, DamageBeforeValidRecordsIsCorruptionNotATornTail) {
  const std::string dir = FreshTestDir("logflip");
  const std::string path = ThreeRecords(dir);
  ASSERT_OK_AND_ASSIGN(const std::string bytes, ReadFileToString(path));
  const size_t record = bytes.size() / 3;
  for (size_t at = 0; at < record; ++at) {
    std::string damaged = bytes;
    damaged[at] ^= 0x5a;
    const std::string d = FreshTestDir("logflip_one");
    ASSERT_OK(WriteFileAtomically(d + "/staging-000000000001.log", damaged));
    std::vector<std::string> keys;
    StagingReplay report = ReplayReport(d, &keys);
    EXPECT_FALSE(report.corruption.empty()) << "byte " << at;
    EXPECT_EQ(report.torn_tail_bytes, 0) << "byte " << at;
    EXPECT_EQ(report.records, 2) << "byte " << at;
    EXPECT_EQ(absl::StrJoin(keys, ","), "key3,key4,key5,key6,key7,key8")
        << "byte " << at;
  }
}

TEST(StagingLogTest, OnlyTheNewestFilesCutOrZeroedTailIsTorn) {
  const std::string dir = FreshTestDir("logtail");
  const std::string path = ThreeRecords(dir);
  ASSERT_OK_AND_ASSIGN(const std::string bytes, ReadFileToString(path));
  std::vector<std::string> keys;
  // Cut short: torn.
  ASSERT_OK(WriteFileAtomically(path, bytes.substr(0, bytes.size() - 7)));
  StagingReplay r = ReplayReport(dir, &keys);
  EXPECT_TRUE(r.corruption.empty()) << r.corruption;
  EXPECT_EQ(r.records, 2);
  EXPECT_GT(r.torn_tail_bytes, 0);
  // Zero-filled last record (size updated, data lost): torn.
  std::string zeroed = bytes;
  size_t last = 0;  // start of the third record: skip two [len][crc][body]
  for (int i = 0; i < 2; ++i) {
    uint32_t len;
    std::memcpy(&len, bytes.data() + last, 4);
    last += 8 + len;
  }
  std::fill(zeroed.begin() + last, zeroed.end(), '\0');
  const std::string dir2 = FreshTestDir("logzero");
  ASSERT_OK(WriteFileAtomically(dir2 + "/staging-000000000001.log", zeroed));
  r = ReplayReport(dir2, &keys);
  EXPECT_TRUE(r.corruption.empty()) << r.corruption;
  EXPECT_EQ(r.records, 2);
  // The same cut in an older file (a newer one exists): corruption.
  const std::string dir3 = FreshTestDir("logolder");
  ASSERT_OK(WriteFileAtomically(dir3 + "/staging-000000000001.log",
                                bytes.substr(0, bytes.size() - 7)));
  ASSERT_OK(WriteFileAtomically(dir3 + "/staging-000000000002.log", bytes));
  keys.clear();
  r = ReplayReport(dir3, &keys);
  EXPECT_THAT(r.corruption, ::testing::HasSubstr("not the newest"));
  EXPECT_EQ(r.records, 5);
}

TEST(StagingLogTest, SalvageKeepsTheValidRecordsAndTheOriginal) {
  const std::string dir = FreshTestDir("logsalvage");
  const std::string path = ThreeRecords(dir);
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(path));
  bytes[bytes.size() / 3 + 20] ^= 0x01;  // inside the second record
  ASSERT_OK(WriteFileAtomically(path, bytes));
  ASSERT_OK_AND_ASSIGN(StagingReplay s, StagingLog::Salvage(dir, kDim, 0));
  EXPECT_EQ(s.records, 2);
  EXPECT_EQ(s.corrupt_records, 1);
  std::vector<std::string> keys;
  StagingReplay r = ReplayReport(dir, &keys);
  EXPECT_TRUE(r.corruption.empty()) << r.corruption;
  EXPECT_EQ(absl::StrJoin(keys, ","), "key0,key1,key2,key6,key7,key8");
  ASSERT_OK_AND_ASSIGN(auto names, ListDirectory(dir));
  EXPECT_THAT(absl::StrJoin(names, " "), ::testing::HasSubstr(".corrupt-"));
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
