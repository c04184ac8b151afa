#include "trainer/data/interactions.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(InteractionsTest, ParsesSequencesWithSortedDenseIds) {
  ASSERT_OK_AND_ASSIGN(
      InteractionData d,
      ParseInteractions("u1\tc a b\nu2\tb b\n\n", InteractionFormat::kAuto));
  EXPECT_THAT(d.item_keys, ElementsAre("a", "b", "c"));
  EXPECT_THAT(d.user_keys, ElementsAre("u1", "u2"));
  EXPECT_THAT(d.sequences[0], ElementsAre(2, 0, 1));
  EXPECT_THAT(d.sequences[1], ElementsAre(1, 1));
  EXPECT_EQ(d.num_interactions(), 5);
}

TEST(InteractionsTest, CsvIsSortedByTimestampPerUser) {
  ASSERT_OK_AND_ASSIGN(InteractionData d,
                       ParseInteractions("user,item,ts\n"
                                         "u1,x,30\n"
                                         "u2,y,5\n"
                                         "u1,y,10\n"
                                         "u1,z,20\n",
                                         InteractionFormat::kAuto));
  EXPECT_THAT(d.item_keys, ElementsAre("x", "y", "z"));
  EXPECT_THAT(d.sequences[0], ElementsAre(1, 2, 0));
  EXPECT_THAT(d.sequences[1], ElementsAre(1));
}

TEST(InteractionsTest, MalformedLinesNameTheLine) {
  EXPECT_THAT(ParseInteractions("u1\ta\nbroken\n", InteractionFormat::kSequences),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
  EXPECT_THAT(ParseInteractions("u,i,1\nu,i,notanumber\n", InteractionFormat::kCsv),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
}

TEST(InteractionsTest, CsvHeaderIsRecognisedByNameOnly) {
  // A recognised header row is skipped, whatever its case.
  for (const char* header : {"user,item,timestamp\n", "User_ID,Item_ID,Time\n", "u,i,TS\n"}) {
    ASSERT_OK_AND_ASSIGN(InteractionData d,
                         ParseInteractions(std::string(header) + "u1,x,2\nu1,y,1\n",
                                           InteractionFormat::kCsv));
    EXPECT_THAT(d.item_keys, ElementsAre("x", "y")) << header;
    EXPECT_EQ(d.num_interactions(), 2) << header;
  }
  // A first data row whose timestamp is not a number (here a date) used to be
  // dropped silently as a header; it is an error naming the line and value.
  EXPECT_THAT(ParseInteractions("u1,x,2021-03-04\nu1,y,5\nu2,y,7\n", InteractionFormat::kCsv),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("line 1"), HasSubstr("\"2021-03-04\" is not a number"),
                             HasSubstr("header"))));
  // Same after leading blank lines: the first non-empty line is the candidate.
  EXPECT_THAT(ParseInteractions("\n\nuser,item,when\nu1,y,5\n", InteractionFormat::kCsv),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 3")));
}

TEST(InteractionsTest, CsvTimestampsMustBeFinite) {
  for (const char* bad : {"nan", "inf", "-Infinity", "NaN"}) {
    EXPECT_THAT(ParseInteractions(absl::StrCat("user,item,timestamp\nu1,x,1\nu1,y,", bad, "\n"),
                                  InteractionFormat::kCsv),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("line 3"), HasSubstr("not finite"))))
        << bad;
  }
  EXPECT_THAT(ParseInteractions("u1,x,1\nu1,y,12abc\n", InteractionFormat::kCsv),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("line 2"), HasSubstr("\"12abc\" is not a number"))));
}

TEST(InteractionsTest, FingerprintChangesWithData) {
  ASSERT_OK_AND_ASSIGN(auto a, ParseInteractions("u\ta b\n", InteractionFormat::kAuto));
  ASSERT_OK_AND_ASSIGN(auto b, ParseInteractions("u\tb a\n", InteractionFormat::kAuto));
  EXPECT_EQ(Fingerprint(a), Fingerprint(a));
  EXPECT_NE(Fingerprint(a), Fingerprint(b));
}

TEST(InteractionsTest, LoadsRealScientificDataWhenPresent) {
  const char* dir = std::getenv("RECSYS_DATA_DIR");
  if (dir == nullptr) GTEST_SKIP() << "RECSYS_DATA_DIR is not set";
  const std::string path = JoinPath(dir, "amazon-scientific/users.tsv");
  if (!PathExists(path)) GTEST_SKIP() << path << " is missing";
  ASSERT_OK_AND_ASSIGN(InteractionData d, LoadInteractions(path));
  EXPECT_EQ(d.num_users(), 12076);
  EXPECT_EQ(d.num_interactions(), 85211);
  EXPECT_LE(d.num_items(), 20825);
  EXPECT_GT(d.num_items(), 20000);
}

}  // namespace
}  // namespace recsys
