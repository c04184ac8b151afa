#include "trainer/training/step_size.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

StepSize Scientific() {
  StepSize s;
  s.batch_size = 64;
  s.max_len = 10;
  s.embedding_dim = 64;
  s.ffn_dim = 256;
  s.num_heads = 2;
  s.num_items = 20825;
  return s;
}

TEST(StepSizeTest, TheDefaultsAndLargeButSaneStepsPass) {
  EXPECT_THAT(CheckStepSize(Scientific(), ""), IsOk());
  StepSize s = Scientific();
  s.batch_size = 4096;
  s.max_len = 1;
  EXPECT_THAT(CheckStepSize(s, ""), IsOk());  // 4096 x 4096 logits
  s = Scientific();
  s.max_len = 4096;
  s.batch_size = 8;  // 32,768 positions; attention 8 x 2 x 4096^2 = 268M: at the bound
  s.num_items = 1000;
  EXPECT_THAT(CheckStepSize(s, ""), IsOk());
}

// batch_size 65536 passed the service's range check and the worker ran out
// of memory: 655,360 positions against 20,825 candidates.
TEST(StepSizeTest, RefusesAStepWhoseLogitsCannotFit) {
  StepSize s = Scientific();
  s.batch_size = 65536;
  EXPECT_THAT(CheckStepSize(s, "spec.train."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("spec.train.batch_size: 65536 windows of max_len 10"),
                             HasSubstr("in-batch logits"), HasSubstr("655360 x 20825 x 1"))));
  // A small catalog bounds the candidates: the same batch then fits.
  s.num_items = 100;
  EXPECT_THAT(CheckStepSize(s, ""), IsOk());
}

TEST(StepSizeTest, RefusesWideActivationsAndLongWindows) {
  StepSize s = Scientific();
  s.ffn_dim = 65536;
  s.batch_size = 512;
  s.num_items = 10;
  EXPECT_THAT(CheckStepSize(s, ""), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("the user encoder's activations")));
  s = Scientific();
  s.max_len = 4096;
  s.batch_size = 64;
  s.num_items = 10;
  EXPECT_THAT(CheckStepSize(s, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the attention scores")));
}

}  // namespace
}  // namespace recsys
