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

TEST(StandinTextCacheTest, StreamedFileEqualsTheInMemoryWrite) {
  // WriteStandinTextCache computes each item's states while writing; the
  // bytes are those of writing all states from memory at once.
  const std::string dir = TestTempPath("");
  const std::string items = "A1\tred beaker\nB2\tblue beaker &amp; lid\nC3\t\n";
  ASSERT_OK(WriteFileAtomically(JoinPath(dir, "items3.tsv"), items));
  StandinTextOptions o;
  o.num_states = 3;
  o.hidden_size = 8;
  ASSERT_OK(WriteStandinTextCache(JoinPath(dir, "items3.tsv"), JoinPath(dir, "s.st"), o));
  std::vector<float> all;
  for (const char* title : {"red beaker", "blue beaker &amp; lid", ""}) {
    auto v = StandinTextStates(title, o);
    all.insert(all.end(), v.begin(), v.end());
  }
  ASSERT_OK_AND_ASSIGN(auto streamed, HiddenStateCache::Open(JoinPath(dir, "s.st")));
  HiddenStateCacheInfo info = streamed->info();
  ASSERT_OK(WriteHiddenStateCache(JoinPath(dir, "m.st"), {"A1", "B2", "C3"}, all.data(), 3, 8,
                                  DType::kF16, info,
                                  {ItemContentFingerprint("red beaker"),
                                   ItemContentFingerprint("blue beaker &amp; lid"),
                                   ItemContentFingerprint("")}));
  ASSERT_OK_AND_ASSIGN(std::string a, ReadFileToString(JoinPath(dir, "s.st")));
  ASSERT_OK_AND_ASSIGN(std::string b, ReadFileToString(JoinPath(dir, "m.st")));
  EXPECT_EQ(a, b);
}

TEST(StandinTextCacheTest, RecordsFingerprintsAndReproducibleOptions) {
  const std::string dir = TestTempPath("");
  ASSERT_OK(WriteFileAtomically(JoinPath(dir, "fp.tsv"), "A1\tred beaker\nB2\tblue lid\n"));
  StandinTextOptions o;
  o.num_states = 3;
  o.hidden_size = 8;
  o.seed = 99;
  ASSERT_OK(WriteStandinTextCache(JoinPath(dir, "fp.tsv"), JoinPath(dir, "fp.st"), o));
  ASSERT_OK_AND_ASSIGN(auto cache, HiddenStateCache::Open(JoinPath(dir, "fp.st")));
  EXPECT_EQ(cache->ContentFingerprint(0), ItemContentFingerprint("red beaker"));
  EXPECT_EQ(cache->ContentFingerprint(1), ItemContentFingerprint("blue lid"));
  EXPECT_EQ(cache->info().backbone_fingerprint, StandinBackboneFingerprint(o));
  // Another catalog, same backbone: the same backbone fingerprint.
  ASSERT_OK(WriteFileAtomically(JoinPath(dir, "fp2.tsv"), "C3\tgreen flask\n"));
  ASSERT_OK(WriteStandinTextCache(JoinPath(dir, "fp2.tsv"), JoinPath(dir, "fp2.st"), o));
  ASSERT_OK_AND_ASSIGN(auto other, HiddenStateCache::Open(JoinPath(dir, "fp2.st")));
  EXPECT_EQ(other->info().backbone_fingerprint, cache->info().backbone_fingerprint);
  EXPECT_NE(other->info().fingerprint, cache->info().fingerprint);
  StandinTextOptions seed2 = o;
  seed2.seed = 100;
  EXPECT_NE(StandinBackboneFingerprint(seed2), StandinBackboneFingerprint(o));
  // The options come back from the cache and reproduce its states.
  ASSERT_OK_AND_ASSIGN(StandinTextOptions back, StandinTextOptionsOf(cache->info()));
  EXPECT_EQ(back.seed, 99u);
  EXPECT_EQ(back.num_states, 3);
  EXPECT_EQ(back.hidden_size, 8);
  HiddenStateCacheInfo not_standin = cache->info();
  not_standin.backbone = "bert-standin-2x32";
  EXPECT_THAT(StandinTextOptionsOf(not_standin), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace recsys
