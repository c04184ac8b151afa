#include "server/similarity/staging_log.h"

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gtest/gtest.h"
#include "server/similarity/test_entries.h"

namespace recsys {
namespace similarity {
namespace {

StagedBatch Batch(int64_t first, int64_t n) {
  StagedBatch b;
  for (int64_t i = first; i < first + n; ++i) FillTestEntry(i, b.add_entries());
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


// A batch that does not reach the disk whole (here: the file-size limit,
// EFBIG) is refused and cut off again; the file keeps the batches before
// it and takes the next ones.
TEST(StagingLogTest, FailedAppendIsRefusedAndCutOff) {
  const std::string dir = FreshDir("staging_efbig");
  const std::string path = JoinPath(dir, StagingLogName(0));
  Replayed r = Reopen(dir, 0);
  ASSERT_OK(r.log->Append(Batch(0, 2)));
  ASSERT_OK_AND_ASSIGN(std::string before, ReadFileToString(path));
  rlimit old;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto previous = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = before.size() + 40;  // the next batch is ~300 bytes: a partial write
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const absl::Status refused = r.log->Append(Batch(2, 20));
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
  std::signal(SIGXFSZ, previous);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find(path), std::string::npos) << refused;
  ASSERT_OK_AND_ASSIGN(std::string after, ReadFileToString(path));
  EXPECT_EQ(after, before);
  ASSERT_OK(r.log->Append(Batch(30, 1)));
  r.log.reset();
  r = Reopen(dir, 0);
  std::vector<std::string> want = Keys(0, 2);
  want.push_back("k30");
  EXPECT_EQ(r.keys, want);
  EXPECT_EQ(r.report.damage, "");
  EXPECT_EQ(r.report.torn_tail_bytes, 0);
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
