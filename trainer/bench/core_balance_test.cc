#include "trainer/bench/core_balance.h"

#include <sched.h>

#include <gtest/gtest.h>

namespace recsys {
namespace {

TEST(CoreBalanceTest, RefusesZeroNegativeAndTooLongWindows) {
  for (auto [seconds, window_ms] : {std::pair{0.0, 50.0}, std::pair{-1.0, 50.0},
                                    std::pair{0.3, 0.0}, std::pair{0.3, 200.0}}) {
    absl::StatusOr<CoreBalance> b = MeasureCoreBalance(seconds, window_ms);
    ASSERT_FALSE(b.ok()) << seconds << " " << window_ms;
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(b.status().message().find("window_ms"), std::string::npos) << b.status();
  }
}

TEST(CoreBalanceTest, MeasuresBothThreadsAndBoundsTheSplitByTheIndependentCeiling) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  if (CPU_COUNT(&allowed) < 2) GTEST_SKIP() << "needs two usable CPUs; this process has one";
  absl::StatusOr<CoreBalance> b = MeasureCoreBalance(0.3, 20);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(b->cpus.size(), 2u);
  EXPECT_NE(b->cpus[0], b->cpus[1]);
  EXPECT_GE(b->windows, 1);
  EXPECT_GT(b->alone_units_per_s, 0);
  EXPECT_GT(b->both_units_per_s[0], 0);
  EXPECT_GT(b->both_units_per_s[1], 0);
  EXPECT_GT(b->parallel_ceiling, 0);
  EXPECT_GT(b->barrier_split_ceiling, 0);
  // 2 x min(a, b) <= a + b in every window.
  EXPECT_LE(b->barrier_split_ceiling, b->parallel_ceiling * (1 + 1e-9));
  EXPECT_GE(b->faster_over_slower_median, 1.0);
  EXPECT_GE(b->faster_over_slower_p90, b->faster_over_slower_median);
  EXPECT_GE(b->faster_over_slower_max, b->faster_over_slower_p90);
  EXPECT_LE(b->windows_over_10_percent, b->windows);
}

}  // namespace
}  // namespace recsys
