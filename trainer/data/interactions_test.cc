#include "trainer/data/interactions.h"

#include <cstdlib>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

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
