#include "retrieval/staging_log.h"

#include <fcntl.h>
#include <unistd.h>

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

}  // namespace
}  // namespace retrieval
}  // namespace recsys
