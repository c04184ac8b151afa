#include "trainer/training/ranking_metrics.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace recsys {
namespace {

TEST(RankingMetricsTest, HandComputed) {
  // Ranks 0, 3, 7, 12, 40.
  RankingMetrics m;
  m.AddAll({0, 3, 7, 12, 40});
  RankingReport r = m.Report();
  EXPECT_EQ(r.count, 5);
  EXPECT_DOUBLE_EQ(r.hr(5), 2.0 / 5);   // ranks 0 and 3
  EXPECT_DOUBLE_EQ(r.hr(10), 3.0 / 5);  // + rank 7
  EXPECT_DOUBLE_EQ(r.hr(20), 4.0 / 5);  // + rank 12
  // NDCG@10 = (1/log2(2) + 1/log2(5) + 1/log2(9)) / 5
  EXPECT_NEAR(r.ndcg_at(10), (1.0 + 1.0 / std::log2(5.0) + 1.0 / std::log2(9.0)) / 5, 1e-12);
  EXPECT_NEAR(r.ndcg_at(5), (1.0 + 1.0 / std::log2(5.0)) / 5, 1e-12);
  EXPECT_NE(r.ToJson().find("\"hr@10\":0.600000"), std::string::npos);
}

TEST(RankingMetricsTest, TiesCountWithTheirExpectationUnderRandomOrder) {
  // One example, 3 items above and 4 tied: its rank is uniform on 3..7.
  RankingMetrics m;
  m.Add(3, 4);
  RankingReport r = m.Report();
  EXPECT_DOUBLE_EQ(r.hr(5), 2.0 / 5);  // ranks 3, 4
  EXPECT_DOUBLE_EQ(r.hr(10), 1.0);
  EXPECT_NEAR(r.ndcg_at(5), (1.0 / std::log2(5.0) + 1.0 / std::log2(6.0)) / 5, 1e-12);
  double all = 0;
  for (int rank = 3; rank <= 7; ++rank) all += 1.0 / std::log2(rank + 2.0);
  EXPECT_NEAR(r.ndcg_at(10), all / 5, 1e-12);
}

TEST(RankingMetricsTest, AllTiedIsChanceLevelNotAHit) {
  // 1000 items with the same score: the target is among the first K with
  // probability K / 1000.
  RankingMetrics m;
  for (int i = 0; i < 50; ++i) m.Add(0, 999);
  RankingReport r = m.Report();
  EXPECT_NEAR(r.hr(10), 10.0 / 1000, 1e-12);
  EXPECT_NEAR(r.hr(20), 20.0 / 1000, 1e-12);
  EXPECT_LT(r.ndcg_at(10), r.hr(10));
  // Far below the target's favour: an exact rank 0 would be a hit.
  RankingMetrics exact;
  exact.Add(0, 0);
  EXPECT_EQ(exact.Report().hr(10), 1.0);
}

TEST(RankingMetricsTest, EmptyIsZero) {
  RankingReport r = RankingMetrics().Report();
  EXPECT_EQ(r.count, 0);
  EXPECT_EQ(r.hr(10), 0.0);
}

TEST(RankingMetricsTest, JsonStaysValidForNonFiniteValues) {
  RankingReport r;
  r.count = 3;
  r.hit_rate[10] = std::numeric_limits<double>::quiet_NaN();
  r.ndcg[10] = std::numeric_limits<double>::infinity();
  const nlohmann::json j = nlohmann::json::parse(r.ToJson());  // throws if invalid
  EXPECT_TRUE(j["hr@10"].is_null());
  EXPECT_TRUE(j["ndcg@10"].is_null());
  EXPECT_EQ(j["count"], 3);
}

}  // namespace
}  // namespace recsys
