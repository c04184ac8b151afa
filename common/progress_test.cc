#include "common/progress.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;

TEST(ProgressTest, ReportsFractionRateAndEta) {
  ProgressTracker::Options options;
  options.unit = "items";
  options.log_interval = absl::ZeroDuration();
  ProgressTracker tracker(options);
  tracker.Start(1000, "epoch 1/3");
  ProgressSnapshot s = tracker.Snapshot();
  EXPECT_EQ(s.done, 0);
  EXPECT_EQ(s.fraction, 0.0);
  EXPECT_LT(s.eta_seconds, 0);  // unknown before any progress

  tracker.Update(250);
  s = tracker.Snapshot();
  EXPECT_EQ(s.done, 250);
  EXPECT_DOUBLE_EQ(s.fraction, 0.25);
  EXPECT_GT(s.rate, 0);
  // ETA is the remaining work at the observed rate.
  EXPECT_NEAR(s.eta_seconds, 750 / s.rate, 750 / s.rate * 0.5 + 1e-3);
  tracker.Add(750);
  s = tracker.Snapshot();
  EXPECT_DOUBLE_EQ(s.fraction, 1.0);
  EXPECT_NEAR(s.eta_seconds, 0, 1e-9);
  EXPECT_THAT(s.ToString(), HasSubstr("epoch 1/3: 100.0% (1000/1000 items)"));
  EXPECT_THAT(s.ToString(), HasSubstr("items/s"));
}

TEST(ProgressTest, UnknownTotal) {
  ProgressTracker tracker({"job", "steps", absl::ZeroDuration()});
  tracker.Start(0);
  tracker.Update(42);
  ProgressSnapshot s = tracker.Snapshot();
  EXPECT_EQ(s.fraction, 0.0);
  EXPECT_LT(s.eta_seconds, 0);
  EXPECT_THAT(s.ToString(), HasSubstr("42 steps"));
}

}  // namespace
}  // namespace recsys
