#include "model/items_table.h"

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;

TEST(ItemsTableTest, ReadsKeyTabValueLines) {
  const std::string path = TestTempPath("items.tsv");
  ASSERT_OK(WriteFileAtomically(path, "a\tTitle A\r\n\nb\t\nc\tx\ty\n"));
  ASSERT_OK_AND_ASSIGN(std::vector<ItemTableRow> items, ReadItemTable(path));
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].key, "a");
  EXPECT_EQ(items[0].value, "Title A");  // "\r" dropped
  EXPECT_EQ(items[1].value, "");         // an empty value is allowed
  EXPECT_EQ(items[2].value, "x\ty");     // the first tab splits
}

TEST(ItemsTableTest, RefusesMalformedLinesNamingThem) {
  EXPECT_THAT(ParseItemTable("a\tok\nno tab here\n", "t.tsv"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("t.tsv:2:")));
  EXPECT_THAT(ParseItemTable("\tno key\n", "t.tsv"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("t.tsv:1: empty key")));
  EXPECT_THAT(ParseItemTable("a\tx\nb\ty\na\tz\n", "t.tsv"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("repeats line 1")));
  EXPECT_THAT(ParseItemTable("k\xff\tx\n", "t.tsv"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("UTF-8")));
  EXPECT_THAT(ReadItemTable(TestTempPath("absent.tsv")),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(ItemsTableTest, DisplayTitleDecodesEntitiesAndCutsAtCharacters) {
  EXPECT_EQ(DisplayTitle("Tubes &amp; Racks"), "Tubes & Racks");
  // "é" is two bytes: a 4-byte cut keeps "aé" (3 bytes), never half of it.
  EXPECT_EQ(DisplayTitle("a\xc3\xa9\xc3\xa9", 4), "a\xc3\xa9");
  // Invalid bytes become U+FFFD, so the title is always sendable.
  EXPECT_EQ(DisplayTitle("x\xffy"), "x\xef\xbf\xbdy");
}

}  // namespace
}  // namespace recsys
