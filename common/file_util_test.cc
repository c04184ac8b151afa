#include "common/file_util.h"

#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::ElementsAre;

std::string TestDir() { return TestTempPath(""); }

TEST(FileUtilTest, AtomicWriteReplacesContentsAndLeavesNoTemporaries) {
  const std::string dir = JoinPath(TestDir(), "atomic");
  ASSERT_OK(CreateDirectories(dir));
  const std::string path = JoinPath(dir, "manifest.json");
  ASSERT_OK(WriteFileAtomically(path, "first"));
  ASSERT_OK(WriteFileAtomically(path, std::string(100000, 'x')));
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFileToString(path));
  EXPECT_EQ(got, std::string(100000, 'x'));
  ASSERT_OK_AND_ASSIGN(auto names, ListDirectory(dir));
  EXPECT_THAT(names, ElementsAre("manifest.json"));
}

TEST(FileUtilTest, ErrorsNameThePathAndMapCodes) {
  EXPECT_THAT(ReadFileToString("/nonexistent/x"),
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::HasSubstr("/nonexistent/x")));
  EXPECT_THAT(WriteFileAtomically("/nonexistent/dir/x", "data"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(PathExists("/nonexistent/x"));
}

TEST(FileUtilTest, DurableRenameOfDirectoryAndRemove) {
  const std::string tmp = JoinPath(TestDir(), "v1.tmp");
  const std::string final_dir = JoinPath(TestDir(), "v1");
  ASSERT_OK(CreateDirectories(tmp));
  ASSERT_OK(WriteFileAtomically(JoinPath(tmp, "a"), "1"));
  ASSERT_OK(DurableRename(tmp, final_dir));
  EXPECT_FALSE(PathExists(tmp));
  EXPECT_TRUE(PathExists(JoinPath(final_dir, "a")));
  ASSERT_OK(RemoveRecursively(final_dir));
  EXPECT_FALSE(PathExists(final_dir));
  EXPECT_OK(RemoveRecursively(final_dir));  // missing is fine
}

TEST(FileUtilTest, Crc32cOfFileEqualsCrcOfItsContents) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/crc_of_file");
  ASSERT_OK(CreateDirectories(dir));
  // Larger than the 64 KiB read chunk, not a multiple of it.
  std::string data(200000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + 3);
  const std::string path = JoinPath(dir, "f");
  ASSERT_OK(WriteFileAtomically(path, data));
  ASSERT_OK_AND_ASSIGN(FileChecksum sum, Crc32cOfFile(path));
  EXPECT_EQ(sum.bytes, data.size());
  EXPECT_EQ(sum.crc32c, Crc32c(data));
  EXPECT_THAT(Crc32cOfFile(JoinPath(dir, "missing")).status(),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(FileUtilTest, Crc32cMatchesKnownVectors) {
  // RFC 3720 B.4 test vectors for CRC-32C.
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  // Incremental computation equals one pass.
  EXPECT_EQ(Crc32c("56789", Crc32c("1234")), Crc32c("123456789"));
  // Lengths around the 8-byte stride of the hardware path agree with a
  // bytewise computation.
  std::string data;
  for (int i = 0; i < 37; ++i) data.push_back(static_cast<char>(i * 37 + 11));
  for (size_t n = 0; n <= data.size(); ++n) {
    uint32_t bytewise = 0;
    for (size_t i = 0; i < n; ++i) bytewise = Crc32c(data.substr(i, 1), bytewise);
    EXPECT_EQ(Crc32c(data.substr(0, n)), bytewise) << n;
  }
}

TEST(FileUtilTest, JoinPath) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
}

}  // namespace
}  // namespace recsys
