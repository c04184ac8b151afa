#include "trainer/training/loss_scaler.h"

#include <limits>

#include <gtest/gtest.h>

namespace recsys {
namespace {

DynamicLossScaler::Options Small() {
  DynamicLossScaler::Options o;
  o.initial_scale = 1024;
  o.growth_interval = 3;
  return o;
}

TEST(DynamicLossScalerTest, ScalesTheLossAndUnscalesCleanGradients) {
  DynamicLossScaler scaler(Small());
  torch::Tensor loss = torch::tensor(0.5f);
  EXPECT_FLOAT_EQ(scaler.Scale(loss).item<float>(), 512.0f);
  EXPECT_FLOAT_EQ(loss.item<float>(), 0.5f);  // untouched
  torch::Tensor g = torch::tensor({1024.0f, -2048.0f});
  EXPECT_TRUE(scaler.UnscaleAndUpdate({g, torch::Tensor()}));  // undefined: ignored
  EXPECT_FLOAT_EQ(g[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(g[1].item<float>(), -2.0f);
  EXPECT_EQ(scaler.skipped_steps(), 0);
  EXPECT_EQ(scaler.clean_steps_in_a_row(), 1);
  EXPECT_DOUBLE_EQ(scaler.scale(), 1024);
}

TEST(DynamicLossScalerTest, NonFiniteGradientsSkipTheStepAndBackOff) {
  DynamicLossScaler scaler(Small());
  EXPECT_TRUE(scaler.UnscaleAndUpdate({torch::ones({3})}));
  for (float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    torch::Tensor ok = torch::ones({4});
    torch::Tensor g = torch::ones({4});
    g[2] = bad;
    const double before = scaler.scale();
    EXPECT_FALSE(scaler.UnscaleAndUpdate({ok, g}));
    EXPECT_DOUBLE_EQ(scaler.scale(), before * 0.5);
    EXPECT_EQ(scaler.clean_steps_in_a_row(), 0);  // growth starts over
  }
  EXPECT_EQ(scaler.skipped_steps(), 2);
}

TEST(DynamicLossScalerTest, GrowsAfterTheIntervalOfCleanStepsOnly) {
  DynamicLossScaler scaler(Small());
  scaler.Update(false);
  scaler.Update(false);
  EXPECT_DOUBLE_EQ(scaler.scale(), 1024);
  scaler.Update(true);  // interrupts the run: 512, count reset
  scaler.Update(false);
  scaler.Update(false);
  EXPECT_DOUBLE_EQ(scaler.scale(), 512);
  scaler.Update(false);  // third clean step in a row
  EXPECT_DOUBLE_EQ(scaler.scale(), 1024);
  EXPECT_EQ(scaler.clean_steps_in_a_row(), 0);
}

TEST(DynamicLossScalerTest, ScaleStaysWithinItsBounds) {
  DynamicLossScaler::Options o = Small();
  o.initial_scale = 4;
  o.min_scale = 1;
  o.max_scale = 8;
  o.growth_interval = 1;
  DynamicLossScaler scaler(o);
  for (int i = 0; i < 5; ++i) scaler.Update(true);
  EXPECT_DOUBLE_EQ(scaler.scale(), 1);
  for (int i = 0; i < 5; ++i) scaler.Update(false);
  EXPECT_DOUBLE_EQ(scaler.scale(), 8);
}

// Why it exists: a gradient of 1e-8 is zero in fp16, but survives scaled.
TEST(DynamicLossScalerTest, ScaledSmallGradientsSurviveFp16) {
  EXPECT_EQ(torch::tensor(1e-8f).to(torch::kHalf).item<float>(), 0.0f);
  DynamicLossScaler scaler;
  torch::Tensor scaled = scaler.Scale(torch::tensor(1e-8f)).to(torch::kHalf);
  EXPECT_GT(scaled.item<float>(), 0.0f);
  torch::Tensor g = scaled.to(torch::kFloat);
  EXPECT_TRUE(scaler.UnscaleAndUpdate({g}));
  EXPECT_NEAR(g.item<float>(), 1e-8f, 1e-10f);
}

TEST(DynamicLossScalerTest, RejectsBadOptions) {
  DynamicLossScaler::Options o;
  o.backoff_factor = 1.5;
  EXPECT_THROW(DynamicLossScaler{o}, c10::Error);
}

}  // namespace
}  // namespace recsys
