#include "trainer/training/evaluation.h"

#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;

::testing::Matcher<TargetRank> Rank(int64_t higher, int64_t tied) {
  return AllOf(Field(&TargetRank::higher, higher), Field(&TargetRank::tied, tied));
}

TEST(EvaluationTest, RanksWithHistoryMasked) {
  torch::Tensor scores = torch::tensor({{0.9f, 0.1f, 0.5f, 0.7f, 0.3f},
                                        {0.2f, 0.8f, 0.6f, 0.4f, 0.0f}});
  // Row 0: target 2 (0.5) is beaten by items 0 and 3 -> rank 2; masking
  // item 0 gives rank 1.
  // Row 1: target 3 (0.4) beaten by 1 and 2 -> rank 2; history {1, 2, 3}
  // masks 1 and 2 but never the target itself -> rank 0.
  EXPECT_THAT(RankTargets(scores, {2, 3}, {{}, {}}), ElementsAre(Rank(2, 0), Rank(2, 0)));
  EXPECT_THAT(RankTargets(scores, {2, 3}, {{0}, {1, 2, 3}}),
              ElementsAre(Rank(1, 0), Rank(0, 0)));
}

TEST(EvaluationTest, TiesAreCountedNotWonByTheTarget) {
  // Row 0: every item scores the same: no item is higher, the other 5 tie.
  // Row 1: items 1 and 4 tie with the target 2, item 0 is higher; masking
  // item 4 (history) removes it from the tie group.
  torch::Tensor scores = torch::tensor({{1.f, 1.f, 1.f, 1.f, 1.f, 1.f},
                                        {0.9f, 0.5f, 0.5f, 0.1f, 0.5f, 0.2f}});
  EXPECT_THAT(RankTargets(scores, {3, 2}, {{}, {}}), ElementsAre(Rank(0, 5), Rank(1, 2)));
  EXPECT_THAT(RankTargets(scores, {3, 2}, {{0, 1}, {4}}), ElementsAre(Rank(0, 3), Rank(1, 1)));
}

TEST(EvaluationTest, RepeatedHistoryItemsAreMaskedOnce) {
  // Item 0 (higher) and item 1 (tied) occur twice in the history; the target
  // 2 occurs in it too (a repeat purchase) and stays ranked.
  torch::Tensor scores = torch::tensor({{0.9f, 0.5f, 0.5f, 0.7f, 0.5f}});
  EXPECT_THAT(RankTargets(scores, {2}, {{0, 1, 0, 2, 1}}), ElementsAre(Rank(1, 1)));
  // The caller's scores are not modified.
  EXPECT_FLOAT_EQ(scores[0][0].item<float>(), 0.9f);
}

TEST(EvaluationTest, NonFiniteScoresAreRefused) {
  // A NaN compares false with everything: counted naively it ranks first.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  torch::Tensor scores = torch::tensor({{0.9f, nan, 0.5f}});
  EXPECT_THROW(RankTargets(scores, {1}, {{}}), c10::Error);
  scores = torch::tensor({{0.9f, std::numeric_limits<float>::infinity(), 0.5f}});
  EXPECT_THROW(RankTargets(scores, {0}, {{}}), c10::Error);
  scores = torch::tensor({{0.9f, -std::numeric_limits<float>::infinity(), 0.5f}});
  EXPECT_THROW(RankTargets(scores, {0}, {{1}}), c10::Error);
}

}  // namespace
}  // namespace recsys
