#include "trainer/bench/host_cpu.h"

#include <gtest/gtest.h>

namespace recsys {
namespace {

TEST(HostCpuTest, ParsesTheAggregateLineAndSplitsBusyIdleSteal) {
  // user nice system idle iowait irq softirq steal guest guest_nice
  absl::StatusOr<HostCpuTicks> t = ParseProcStat(
      "cpu  100 2 30 500 7 1 4 60 9 0\ncpu0 50 1 15 250 3 0 2 30 0 0\nintr 1 2\n");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->busy, 100u + 2 + 30 + 1 + 4);  // guest is already in user
  EXPECT_EQ(t->idle, 507u);
  EXPECT_EQ(t->steal, 60u);
}

TEST(HostCpuTest, OldKernelsWithoutStealReadAsZero) {
  absl::StatusOr<HostCpuTicks> t = ParseProcStat("cpu 1 2 3 4 5 6 7\n");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->steal, 0u);
  EXPECT_EQ(t->busy, 1u + 2 + 3 + 6 + 7);
}

TEST(HostCpuTest, RefusesMissingLinesShortLinesAndNonNumbersNamingTheField) {
  struct Case {
    const char* text;
    const char* want;
  } cases[] = {
      {"cpu0 1 2 3 4 5 6 7 8\n", "no aggregate"},
      {"", "no aggregate"},
      {"cpu 1 2 3\n", "has 3 fields; expected at least 7"},
      {"cpu 1 2 x 4 5 6 7 8\n", "system field must be a whole number; got \"x\""},
      {"cpu 1 -2 3 4 5 6 7 8\n", "nice field"},
      {"cpu 1 2 3 4 5 6 7 99999999999999999999999\n", "steal field"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<HostCpuTicks> t = ParseProcStat(c.text);
    ASSERT_FALSE(t.ok()) << c.text;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find(c.want), std::string::npos) << t.status();
  }
}

TEST(HostCpuTest, SharesArePercentOfAllTicksAndUnknownWithoutTicks) {
  HostCpuShare s = ShareBetween({10, 20, 5}, {70, 40, 25});  // 60 busy, 20 idle, 20 steal
  EXPECT_DOUBLE_EQ(s.steal_percent, 20);
  EXPECT_DOUBLE_EQ(s.idle_percent, 20);
  EXPECT_EQ(ShareBetween({1, 1, 1}, {1, 1, 1}).steal_percent, -1);
  EXPECT_EQ(ShareBetween({5, 1, 1}, {4, 9, 9}).idle_percent, -1);  // a counter went back
}

TEST(HostCpuTest, ReadsThisMachinesCountersAndTheyOnlyGrow) {
  absl::StatusOr<HostCpuTicks> a = ReadHostCpuTicks();
  if (!a.ok() && a.status().code() == absl::StatusCode::kUnavailable) {
    GTEST_SKIP() << a.status();
  }
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_GT(a->busy + a->idle, 0u);
  absl::StatusOr<HostCpuTicks> b = ReadHostCpuTicks();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_GE(b->busy, a->busy);
  EXPECT_GE(b->idle, a->idle);
  EXPECT_GE(b->steal, a->steal);
}

}  // namespace
}  // namespace recsys
