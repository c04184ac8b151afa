#include "retrieval/index_spec.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retrieval/collection_config.h"
#include "retrieval/test_util.h"
#include "retrieval/vector_index.h"

namespace recsys {
namespace retrieval {
namespace {

using ::testing::HasSubstr;

TEST(ParseIndexSpecTest, ParsesTheSupportedGrammar) {
  ASSERT_OK_AND_ASSIGN(IndexSpec s, ParseIndexSpec("HNSW32", 64));
  EXPECT_EQ(s.kind, IndexSpec::Kind::kHnsw);
  EXPECT_EQ(s.hnsw_m, 32);
  ASSERT_OK_AND_ASSIGN(s, ParseIndexSpec("IVF1024,PQ16x6", 64));
  EXPECT_EQ(s.kind, IndexSpec::Kind::kIvfPq);
  EXPECT_EQ(s.nlist, 1024);
  EXPECT_EQ(s.pq_m, 16);
  EXPECT_EQ(s.pq_nbits, 6);
  EXPECT_EQ(s.min_training_vectors(), 1024);
  ASSERT_OK_AND_ASSIGN(s, ParseIndexSpec("PQ8", 64));
  EXPECT_EQ(s.min_training_vectors(), 256);
  for (const char* ok : {"Flat", "HNSW4", "HNSW128,Flat", "IVF1,Flat",
                         "IVF16,SQ8", "SQfp16", "SQ4", "IVF16,PQ2x4"}) {
    EXPECT_OK(ParseIndexSpec(ok, 8).status()) << ok;
  }
}

TEST(ParseIndexSpecTest, RefusesWhatCrashesOrExhaustsFaiss) {
  struct Case {
    const char* description;
    int dimension;
    const char* expected;
  };
  for (const Case& c : std::vector<Case>{
           {"IVF0,Flat", 8, "IVF<nlist>"},
           {"HNSW0", 8, "HNSW<M>"},
           {"HNSW3", 8, "HNSW<M>"},
           {"HNSW100000", 8, "HNSW<M>"},
           {"PQ0", 8, "PQ<m>"},
           {"PQ16", 8, "PQ<m>"},           // more sub-quantizers than dims
           {"PQ3", 8, "PQ<m>"},            // does not divide
           {"PQ8x0", 8, "nbits"},
           {"PQ8x16", 8, "nbits"},
           {"IVF99999999,Flat", 8, "IVF<nlist>"},
           {"IVF65536,Flat", 4096, "MB"},  // 1 GB of centroids
           {"IVF65536,PQ64x8", 64, "tables"},
           {"IVF-1,Flat", 8, "IVF"},
           {"IVF 16,Flat", 8, "IVF"},
           {"IVF16", 8, "second component"},
           {"IVF16,Flat,Flat", 8, "too many"},
           {"HNSW32,PQ4", 8, "Flat storage"},
           {"LSH", 8, "unsupported"},
           {"", 8, "1..64"},
           {"Flat,", 8, "unsupported"},
           {"OPQ4,IVF16,PQ4", 8, "too many"},
       }) {
    EXPECT_THAT(ParseIndexSpec(c.description, c.dimension).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(c.expected)))
        << c.description;
  }
}

TEST(ParseIndexSpecTest, QuotesLongInputTruncated) {
  const std::string huge(10000, 'H');
  absl::Status s = ParseIndexSpec(huge, 8).status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_LT(s.message().size(), 600u);
  EXPECT_THAT(s.message(), HasSubstr("(10000 bytes)"));
}

// Random descriptions built from FAISS's vocabulary with edge-case numbers:
// each one is either refused by ValidateConfig, or builds (or fails with a
// status) and then searches with finite scores. A crash fails the test by
// taking the process down; the loop is bounded in time.
TEST(IndexSpecFuzzTest, AcceptedDescriptionsBuildAndSearchOrFailCleanly) {
  std::mt19937 rng(20261201);
  const std::vector<std::string> heads = {"Flat", "HNSW", "IVF", "PQ", "SQ",
                                          "IDMap", "OPQ", "LSH", "RFlat",
                                          "IVF_HNSW", "PCA", "Refine"};
  const std::vector<std::string> tails = {"", ",Flat", ",PQ", ",SQ8", ",SQ4",
                                          ",SQfp16", ",HNSW", ",PQ", ",LSH",
                                          ",Flat,Flat", "x", ",SQ"};
  const std::vector<std::string> numbers = {
      "", "0", "1", "2", "3", "4", "7", "8", "16", "32", "64", "128", "256",
      "1000", "65536", "100000", "4294967297", "-1", "x4", "x8", "x0", "x12",
      "1x4", "2x8", " 4", "+8"};
  auto pick = [&](const std::vector<std::string>& v) {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
  };
  const int64_t n = 300;
  const std::vector<int> dims = {1, 3, 8, 12};
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  int tried = 0, accepted = 0, built = 0;
  for (; tried < 400 && absl::Now() < deadline; ++tried) {
    std::string description = pick(heads) + pick(numbers);
    const std::string tail = pick(tails);
    description += tail;
    if (!tail.empty() && tail.back() != 't' && tail.back() != '8' &&
        tail.back() != '4' && tail.back() != '6') {
      description += pick(numbers);
    }
    const int d = dims[tried % dims.size()];
    const std::vector<float> vectors = RandomUnitVectors(n, d, 7 + tried);
    for (Metric metric : {Metric::kInnerProduct, Metric::kL2}) {
      CollectionConfig config = TestConfig("fuzz", d, description, metric);
      config.flat_fallback_when_untrainable = (tried % 2) == 0;
      if (!ValidateConfig(config).ok()) continue;
      ++accepted;
      const absl::Time start = absl::Now();
      absl::StatusOr<std::unique_ptr<VectorIndex>> index =
          VectorIndex::Build(config, vectors.data(), n);
      EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << description;
      if (!index.ok()) {
        EXPECT_NE(index.status().code(), absl::StatusCode::kInternal)
            << description << ": " << index.status();
        continue;
      }
      ++built;
      std::vector<float> distances(5);
      std::vector<int64_t> labels(5);
      ASSERT_OK((*index)->Search(vectors.data(), 1, 5, IndexSearchParams(),
                                 distances.data(), labels.data()))
          << description << " d=" << d;
      EXPECT_GE(labels[0], 0) << description << " d=" << d;
      for (int i = 0; i < 5; ++i) {
        if (labels[i] >= 0) {
          EXPECT_TRUE(std::isfinite(distances[i])) << description;
        }
      }
    }
  }
  EXPECT_GT(tried, 50);
  EXPECT_GT(accepted, 10);
  EXPECT_GT(built, 5);
}

TEST(IndexSpecTest, BudgetsGrowWithTheIndex) {
  ASSERT_OK_AND_ASSIGN(IndexSpec flat, ParseIndexSpec("Flat", 64));
  ASSERT_OK_AND_ASSIGN(IndexSpec hnsw, ParseIndexSpec("HNSW32", 64));
  EXPECT_GT(EstimateBuildBytes(hnsw, 64, 1000000, 0),
            EstimateBuildBytes(flat, 64, 1000000, 0));
  ASSERT_OK_AND_ASSIGN(IndexSpec ivf, ParseIndexSpec("IVF4096,Flat", 64));
  EXPECT_GT(EstimateTrainingFlops(ivf, 64, 1000000), 1e11);
  EXPECT_EQ(EstimateTrainingFlops(flat, 64, 1000000), 0);
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
