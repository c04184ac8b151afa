#include "trainer/training/ranking_metrics.h"

#include <cmath>

#include "gtest/gtest.h"

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

TEST(RankingMetricsTest, EmptyIsZero) {
  RankingReport r = RankingMetrics().Report();
  EXPECT_EQ(r.count, 0);
  EXPECT_EQ(r.hr(10), 0.0);
}

}  // namespace
}  // namespace recsys
