#include "trainer/data/sequence_split.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::ElementsAre;

InteractionData Make(std::vector<std::vector<int32_t>> seqs, int num_items) {
  InteractionData d;
  for (int i = 0; i < num_items; ++i) d.item_keys.push_back(std::to_string(i));
  for (size_t u = 0; u < seqs.size(); ++u) d.user_keys.push_back("u" + std::to_string(u));
  d.sequences = std::move(seqs);
  return d;
}

TEST(SequenceSplitTest, LeaveOneOut) {
  LeaveOneOutSplit s = SplitLeaveOneOut(Make({{0, 1, 2, 3, 4}, {5, 6}}, 7), 10);
  ASSERT_EQ(s.test.size(), 1u);
  EXPECT_EQ(s.test[0].target, 4);
  EXPECT_THAT(s.test[0].history, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(s.validation[0].target, 3);
  EXPECT_THAT(s.validation[0].history, ElementsAre(0, 1, 2));
  ASSERT_EQ(s.train.size(), 2u);
  EXPECT_THAT(s.train[0].items, ElementsAre(0, 1, 2));
  EXPECT_THAT(s.train[1].items, ElementsAre(5, 6));  // too short to evaluate
  EXPECT_THAT(s.train_item_counts, ElementsAre(1, 1, 1, 0, 0, 1, 1));
  EXPECT_THAT(s.train_items_of_user[0], ElementsAre(0, 1, 2));
}

TEST(SequenceSplitTest, WindowsCoverEveryTransitionOnce) {
  // Training prefix 0..7 (8 items), max_len 3: windows of <= 4 items.
  LeaveOneOutSplit s =
      SplitLeaveOneOut(Make({{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}, 10), 3);
  ASSERT_EQ(s.train.size(), 3u);
  EXPECT_THAT(s.train[0].items, ElementsAre(4, 5, 6, 7));
  EXPECT_THAT(s.train[1].items, ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(s.train[2].items, ElementsAre(0, 1));
}

TEST(SequenceSplitTest, LastItems) {
  EXPECT_THAT(LastItems({1, 2, 3, 4}, 2), ElementsAre(3, 4));
  EXPECT_THAT(LastItems({1}, 2), ElementsAre(1));
}

}  // namespace
}  // namespace recsys
