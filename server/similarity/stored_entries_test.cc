#include "server/similarity/stored_entries.h"

#include <string>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gtest/gtest.h"
#include "server/similarity/test_entries.h"

namespace recsys {
namespace similarity {
namespace {

TEST(StoredEntriesTest, RoundTrip) {
  const std::string path = TestTempPath("entries_roundtrip");
  // Over 1 MiB, so that the checksum spans several appended pieces.
  constexpr int64_t kCount = 40'000;
  ASSERT_OK(WriteStoredEntries(path, kCount, FillTestEntry));
  ASSERT_OK_AND_ASSIGN(std::vector<StoredEntry> got, ReadStoredEntries(path));
  ASSERT_EQ(got.size(), static_cast<size_t>(kCount));
  for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{12345}, kCount - 1}) {
    StoredEntry want;
    FillTestEntry(i, &want);
    EXPECT_EQ(got[i].SerializeAsString(), want.SerializeAsString()) << i;
  }
  ASSERT_OK(WriteStoredEntries(path, 0, FillTestEntry));
  ASSERT_OK_AND_ASSIGN(got, ReadStoredEntries(path));
  EXPECT_TRUE(got.empty());
}

TEST(StoredEntriesTest, DamageIsDataLossAndMissingIsNotFound) {
  const std::string path = TestTempPath("entries_damaged");
  ASSERT_OK(WriteStoredEntries(path, 100, FillTestEntry));
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

}  // namespace
}  // namespace similarity
}  // namespace recsys
