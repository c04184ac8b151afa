#include "server/similarity/example_selector.h"

#include <cmath>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/similarity/hashed_text_embedder.h"

namespace recsys {
namespace similarity {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(ExampleSelectorTest, TakesTheKBestInScoreOrder) {
  std::vector<ExampleCandidate> c = {{0.2f}, {0.9f}, {0.5f}, {0.9f}};
  ASSERT_OK_AND_ASSIGN(auto chosen, SelectExamples(c, {.k = 3}));
  EXPECT_THAT(chosen, ElementsAre(1, 3, 2));  // ties keep their order
  EXPECT_EQ(CandidatesToFetch({.k = 3}), 3);
  EXPECT_EQ(CandidatesToFetch({.k = 3, .min_quality = 0.5f}), 15);
  EXPECT_EQ(CandidatesToFetch({.k = 20, .min_similarity = 0.1f}), 100);
}

TEST(ExampleSelectorTest, SimilarityCutOffAndQualityFloor) {
  std::vector<ExampleCandidate> c = {
      {0.9f, 0.1f}, {0.8f, std::nullopt}, {0.7f, 0.9f}, {0.3f, 1.0f}};
  ExampleSelectionOptions o;
  o.k = 4;
  o.min_similarity = 0.5f;
  o.min_quality = 0.5f;
  ASSERT_OK_AND_ASSIGN(auto chosen, SelectExamples(c, o));
  // 0: quality 0.1 below the floor; 1: unknown quality passes; 3: too far.
  EXPECT_THAT(chosen, ElementsAre(1, 2));
  o.min_similarity = 0.95f;
  ASSERT_OK_AND_ASSIGN(auto none, SelectExamples(c, o));
  EXPECT_THAT(none, IsEmpty());
}

TEST(ExampleSelectorTest, DiversityThresholdSkipsNearDuplicates) {
  ASSERT_OK_AND_ASSIGN(auto e, HashedTextEmbedder::Create({}));
  const char* texts[] = {"And God said, Let there be light",
                         "And God said: let there be light!",  // near copy
                         "And God saw the light, that it was good",
                         "And God said, Let there be a firmament"};
  ASSERT_OK_AND_ASSIGN(auto q, e->Embed("God said, Let there be light"));
  std::vector<ExampleCandidate> c;
  for (const char* t : texts) {
    ASSERT_OK_AND_ASSIGN(auto v, e->Embed(t));
    double s = 0;
    for (size_t i = 0; i < v.size(); ++i) s += v[i] * q[i];
    c.push_back({static_cast<float>(s), std::nullopt, v});
  }
  ASSERT_OK_AND_ASSIGN(auto plain, SelectExamples(c, {.k = 3}));
  EXPECT_THAT(plain, ::testing::Contains(1));
  ExampleSelectionOptions o;
  o.k = 3;
  o.diversity_threshold = 0.95f;
  ASSERT_OK_AND_ASSIGN(auto diverse, SelectExamples(c, o));
  EXPECT_EQ(diverse.size(), 3u);
  // Exactly one of the two near-identical sentences survives.
  const int copies = std::count(diverse.begin(), diverse.end(), 0) +
                     std::count(diverse.begin(), diverse.end(), 1);
  EXPECT_EQ(copies, 1);
}

TEST(ExampleSelectorTest, RefusesBadOptionsAndCandidates) {
  EXPECT_THAT(SelectExamples({}, {.k = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("k:")));
  EXPECT_THAT(SelectExamples({}, {.k = 21}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1..20")));
  EXPECT_THAT(SelectExamples({}, {.k = 1, .min_similarity = 2.0f}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("min_similarity")));
  ExampleSelectionOptions o;
  o.diversity_threshold = 0.9f;
  EXPECT_THAT(SelectExamples({{0.5f}}, o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("vector")));
  EXPECT_THAT(SelectExamples({{std::nanf("")}}, {.k = 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NaN")));
  for (float bad : {std::nanf(""), HUGE_VALF, -HUGE_VALF}) {
    ExampleSelectionOptions q;
    q.min_quality = bad;
    EXPECT_THAT(ValidateExampleSelectionOptions(q),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("min_quality: expected a finite number")))
        << bad;
  }
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
