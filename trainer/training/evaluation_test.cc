#include "trainer/training/evaluation.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::ElementsAre;

TEST(EvaluationTest, RanksWithHistoryMasked) {
  torch::Tensor scores = torch::tensor({{0.9f, 0.1f, 0.5f, 0.7f, 0.3f},
                                        {0.2f, 0.8f, 0.6f, 0.4f, 0.0f}});
  // Row 0: target 2 (0.5) is beaten by items 0 and 3 -> rank 2; masking
  // item 0 gives rank 1.
  // Row 1: target 3 (0.4) beaten by 1 and 2 -> rank 2; history {1, 2, 3}
  // masks 1 and 2 but never the target itself -> rank 0.
  EXPECT_THAT(RankTargets(scores, {2, 3}, {{}, {}}), ElementsAre(2, 2));
  EXPECT_THAT(RankTargets(scores, {2, 3}, {{0}, {1, 2, 3}}), ElementsAre(1, 0));
}

}  // namespace
}  // namespace recsys
