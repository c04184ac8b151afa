#include "trainer/data/standin_text_cache.h"

#include <cmath>
#include <cstdlib>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/hidden_state_cache.h"

namespace recsys {
namespace {

using ::testing::ElementsAre;

double Cosine(const std::vector<float>& a, const std::vector<float>& b, int s, int h) {
  double ab = 0, aa = 0, bb = 0;
  for (int d = 0; d < h; ++d) {
    const double x = a[s * h + d], y = b[s * h + d];
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / std::sqrt(aa * bb);
}

TEST(StandinTextCacheTest, Tokens) {
  EXPECT_THAT(TitleTokens("Dual-Head Stethoscope &amp; Case (MDF747)"),
              ElementsAre("dual", "head", "stethoscope", "case", "mdf747"));
}

TEST(StandinTextCacheTest, SharedWordsMeanSimilarStates) {
  StandinTextOptions o;
  o.num_states = 3;
  o.hidden_size = 256;
  auto a = StandinTextStates("digital caliper steel 150mm", o);
  auto b = StandinTextStates("digital caliper plastic", o);
  auto c = StandinTextStates("nitrile gloves box", o);
  EXPECT_EQ(a.size(), 3u * 256);
  EXPECT_EQ(a, StandinTextStates("digital caliper steel 150mm", o));
  EXPECT_GT(Cosine(a, b, 0, 256), 0.4);
  EXPECT_LT(std::abs(Cosine(a, c, 0, 256)), 0.25);
}

TEST(StandinTextCacheTest, WritesACacheForEveryItem) {
  const std::string dir = TestTempPath("");
  ASSERT_OK(WriteFileAtomically(JoinPath(dir, "items.tsv"),
                                "A1\tred beaker\nB2\tblue beaker &amp; lid\n"));
  StandinTextOptions o;
  o.num_states = 4;
  o.hidden_size = 8;
  ASSERT_OK(WriteStandinTextCache(JoinPath(dir, "items.tsv"), JoinPath(dir, "t.st"), o));
  ASSERT_OK_AND_ASSIGN(auto cache, HiddenStateCache::Open(JoinPath(dir, "t.st")));
  EXPECT_EQ(cache->num_items(), 2);
  EXPECT_EQ(cache->num_states(), 4);
  EXPECT_TRUE(cache->info().standin);
  EXPECT_EQ(cache->info().modality, "text");
  EXPECT_EQ(cache->RowOf("B2"), 1);
}

}  // namespace
}  // namespace recsys
