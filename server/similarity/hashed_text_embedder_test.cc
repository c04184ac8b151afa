#include "server/similarity/hashed_text_embedder.h"

#include <cmath>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace similarity {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

std::vector<float> MustEmbed(const HashedTextEmbedder& e, absl::string_view t) {
  auto v = e.Embed(t);
  EXPECT_OK(v.status());
  return v.ok() ? *v : std::vector<float>();
}

TEST(HashedTextEmbedderTest, StableHashDependsOnBytesAndSeed) {
  EXPECT_EQ(StableHash64("abc", 0), StableHash64("abc", 0));
  EXPECT_NE(StableHash64("abc", 0), StableHash64("abc", 1));
  EXPECT_NE(StableHash64("abc", 0), StableHash64("abd", 0));
  // splitmix64's finaliser of FNV-1a("") = 0xcbf29ce484222325.
  uint64_t h = 0xcbf29ce484222325ull;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  EXPECT_EQ(StableHash64("", 0), h);
}

TEST(HashedTextEmbedderTest, NormalisesCaseAccentsAndPunctuation) {
  EXPECT_THAT(NormalizedWords("  ¡Él CRIÓ, la-tierra!\tÆ 中文 "),
              ElementsAre("el", "crio", "la", "tierra", "æ", "中", "文"));
  ASSERT_OK_AND_ASSIGN(auto e, HashedTextEmbedder::Create({}));
  EXPECT_EQ(MustEmbed(*e, "CAFÉ au lait!"), MustEmbed(*e, "café  au   lait"));
}

TEST(HashedTextEmbedderTest, OutputIsUnitNormAndOverlapScoresHigher) {
  ASSERT_OK_AND_ASSIGN(auto e, HashedTextEmbedder::Create({}));
  const auto q = MustEmbed(*e, "In the beginning God created the heaven");
  ASSERT_EQ(q.size(), 512u);
  EXPECT_NEAR(Dot(q, q), 1.0, 1e-5);
  const auto close = MustEmbed(*e, "in the beginning was the word");
  const auto inflected = MustEmbed(*e, "In the beginnings Gods create heavens");
  const auto far = MustEmbed(*e, "Jesus wept.");
  EXPECT_GT(Dot(q, close), Dot(q, far) + 0.2);
  // Character n-grams make inflected forms similar without shared words.
  EXPECT_GT(Dot(q, inflected), 0.5);
  EXPECT_LT(Dot(q, far), 0.2);
}

TEST(HashedTextEmbedderTest, IdfFittedOnTheIndexDownweightsCommonWords) {
  HashedTextOptions o;
  o.max_ngram = 0;  // words only, so the effect is on whole words
  std::vector<std::string> docs;
  for (int i = 0; i < 50; ++i) docs.push_back("the of and " + std::to_string(i));
  docs.push_back("cat");
  docs.push_back("dog");
  ASSERT_OK_AND_ASSIGN(auto unfitted, HashedTextEmbedder::Create(o));
  ASSERT_OK_AND_ASSIGN(auto fitted, HashedTextEmbedder::Fit(o, docs));
  EXPECT_EQ(fitted->fitted_documents(), 52);
  const double before = Dot(MustEmbed(*unfitted, "the of and cat"),
                            MustEmbed(*unfitted, "the of and dog"));
  const double after = Dot(MustEmbed(*fitted, "the of and cat"),
                           MustEmbed(*fitted, "the of and dog"));
  // Unfitted: 3 of 4 equal-weight words shared, cosine 3/4.
  EXPECT_NEAR(before, 0.75, 0.02);
  EXPECT_LT(after, 0.25);
  EXPECT_NE(fitted->fingerprint(), unfitted->fingerprint());
}

TEST(HashedTextEmbedderTest, SerializeRoundTripsAndDetectsDamage) {
  HashedTextOptions o;
  o.dimension = 256;
  o.idf_buckets = 4096;
  ASSERT_OK_AND_ASSIGN(auto e, HashedTextEmbedder::Fit(
                                   o, {"uno dos tres", "dos tres", "tres"}));
  EXPECT_THAT(e->fingerprint(),
              HasSubstr("hashed_text/v1 dim=256 ngrams=3-5 word_weight=2 "
                        "idf_buckets=4096 seed=0 docs=3 state="));
  const std::string blob = e->Serialize();
  ASSERT_OK_AND_ASSIGN(auto back, HashedTextEmbedder::Deserialize(blob));
  EXPECT_EQ(back->fingerprint(), e->fingerprint());
  EXPECT_EQ(MustEmbed(*back, "dos uno"), MustEmbed(*e, "dos uno"));
  // Fitting again on the same documents gives the same state.
  ASSERT_OK_AND_ASSIGN(auto again, HashedTextEmbedder::Fit(
                                       o, {"uno dos tres", "dos tres", "tres"}));
  EXPECT_EQ(again->fingerprint(), e->fingerprint());

  // Every single-byte change in the table is caught by the checksum or by
  // the safetensors reader, never accepted silently.
  for (size_t at : {blob.size() - 1, blob.size() - 4096, blob.size() / 2}) {
    std::string damaged = blob;
    damaged[at] ^= 0x10;
    EXPECT_THAT(HashedTextEmbedder::Deserialize(damaged),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << at;
  }
  EXPECT_THAT(HashedTextEmbedder::Deserialize(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(HashedTextEmbedderTest, GoldenVectorIsTheSameOnEveryRun) {
  // Pins the hashing and weighting: if this moves, stored collections made
  // by the previous code no longer match their queries.
  ASSERT_OK_AND_ASSIGN(auto e, HashedTextEmbedder::Create({}));
  const auto v = MustEmbed(*e, "Hello, world");
  std::string bytes;
  for (float f : v) {
    const int32_t q = static_cast<int32_t>(std::lround(f * 1e6));
    bytes.append(reinterpret_cast<const char*>(&q), sizeof(q));
  }
  EXPECT_EQ(Crc32c(bytes), 856614523u) << "golden checksum";
}

TEST(HashedTextEmbedderTest, RefusesBadInput) {
  ASSERT_OK_AND_ASSIGN(auto e, HashedTextEmbedder::Create({}));
  EXPECT_THAT(e->Embed(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(e->Embed(std::string(10 << 20, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("10485760 bytes, more than the limit")));
  EXPECT_THAT(e->Embed(" ,.;!? \t"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no word characters")));
  // Invalid UTF-8 is embedded (as U+FFFD), not refused or crashed on.
  EXPECT_OK(e->Embed("caf\xc3 \xff\xfe ok").status());

  HashedTextOptions o;
  o.dimension = 8;
  EXPECT_THAT(HashedTextEmbedder::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("dimension")));
  o = {};
  o.min_ngram = 4;
  o.max_ngram = 3;
  EXPECT_THAT(HashedTextEmbedder::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ngram")));
  o = {};
  o.max_text_bytes = 4;
  EXPECT_THAT(HashedTextEmbedder::Fit(o, {"ok", "too long"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("documents[1]")));
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
