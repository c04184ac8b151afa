#include "trainer/data/layer_selection.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::ElementsAre;

TEST(LayerSelectionTest, EverySecondGivesSevenBlocksForBertBase) {
  ASSERT_OK_AND_ASSIGN(auto idx, SelectStates(13, {LayerMode::kEverySecond}));
  EXPECT_THAT(idx, ElementsAre(0, 2, 4, 6, 8, 10, 12));
}

TEST(LayerSelectionTest, GroupModeEqualisesDepths) {
  // A 24-layer and an 80-layer encoder both give 4 blocks.
  ASSERT_OK_AND_ASSIGN(auto a, SelectStates(25, {LayerMode::kGroup, 4}));
  ASSERT_OK_AND_ASSIGN(auto b, SelectStates(81, {LayerMode::kGroup, 4}));
  EXPECT_THAT(a, ElementsAre(6, 12, 18, 24));
  EXPECT_THAT(b, ElementsAre(20, 40, 60, 80));
  ASSERT_OK_AND_ASSIGN(auto c, SelectStates(7, {LayerMode::kGroup, 4}));
  EXPECT_THAT(c, ElementsAre(2, 3, 5, 6));
  EXPECT_THAT(SelectStates(5, {LayerMode::kGroup, 5}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(LayerSelectionTest, ParsesNames) {
  ASSERT_OK_AND_ASSIGN(auto m, ParseLayerMode("group"));
  EXPECT_EQ(m, LayerMode::kGroup);
  EXPECT_EQ(LayerModeName(LayerMode::kAll), "all");
  EXPECT_THAT(ParseLayerMode("odd"), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace recsys
