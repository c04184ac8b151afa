#include "retrieval/vector_index.h"

#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/status_matchers.h"
#include "faiss/impl/IDSelector.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retrieval/test_util.h"

namespace recsys {
namespace retrieval {
namespace {

using ::testing::HasSubstr;

constexpr int kDim = 16;

// Exact top-1 by brute force (inner product).
int64_t BruteTop1(const std::vector<float>& base, int64_t n, const float* q) {
  int64_t best = -1;
  float best_score = -1e30f;
  for (int64_t i = 0; i < n; ++i) {
    float s = 0;
    for (int j = 0; j < kDim; ++j) s += base[i * kDim + j] * q[j];
    if (s > best_score) {
      best_score = s;
      best = i;
    }
  }
  return best;
}

TEST(VectorIndexTest, FlatIsExactAndExposesRawVectors) {
  const int64_t n = 500;
  std::vector<float> base = RandomUnitVectors(n, kDim, 1);
  ASSERT_OK_AND_ASSIGN(auto index,
                       VectorIndex::Build(TestConfig("t", kDim), base.data(), n));
  ASSERT_NE(index->raw_vectors(), nullptr);
  EXPECT_EQ(index->raw_vectors()[17 * kDim + 3], base[17 * kDim + 3]);
  std::vector<float> queries = RandomUnitVectors(20, kDim, 2);
  std::vector<float> d(20);
  std::vector<int64_t> l(20);
  ASSERT_OK(index->Search(queries.data(), 20, 1, {}, d.data(), l.data()));
  for (int q = 0; q < 20; ++q) {
    EXPECT_EQ(l[q], BruteTop1(base, n, &queries[q * kDim]));
  }
}

TEST(VectorIndexTest, SelectorFiltersInsideTheSearch) {
  const int64_t n = 300;
  std::vector<float> base = RandomUnitVectors(n, kDim, 3);
  for (const char* factory : {"Flat", "HNSW16", "IVF4,Flat"}) {
    ASSERT_OK_AND_ASSIGN(
        auto index,
        VectorIndex::Build(TestConfig("t", kDim, factory), base.data(), n));
    std::vector<faiss::Index::idx_t> even;
    for (int64_t i = 0; i < n; i += 2) even.push_back(i);
    faiss::IDSelectorBatch sel(even.size(), even.data());
    IndexSearchParams p;
    p.selector = &sel;
    p.nprobe = 4;
    p.ef_search = 64;
    std::vector<float> d(10);
    std::vector<int64_t> l(10);
    ASSERT_OK(index->Search(base.data() + 7 * kDim, 1, 10, p, d.data(),
                            l.data()))
        << factory;
    for (int64_t id : l) {
      if (id >= 0) {
        EXPECT_EQ(id % 2, 0) << factory;
      }
    }
  }
}

TEST(VectorIndexTest, SelectorHoldsOnLargeBatches) {
  // 64 queries: FAISS's BLAS path for L2 (FastFlatIndex hands L2 batches
  // of 32+ to it), the sidecar's block kernel for inner product; the
  // selector must hold on both.
  const int64_t n = 1000;
  std::vector<float> base = RandomUnitVectors(n, kDim, 9);
  for (Metric metric : {Metric::kInnerProduct, Metric::kL2}) {
    ASSERT_OK_AND_ASSIGN(auto index, VectorIndex::Build(TestConfig("t", kDim, "Flat", metric),
                                                        base.data(), n));
    std::vector<faiss::Index::idx_t> even;
    for (int64_t i = 0; i < n; i += 2) even.push_back(i);
    faiss::IDSelectorBatch sel(even.size(), even.data());
    IndexSearchParams p;
    p.selector = &sel;
    const int nq = 64;
    std::vector<float> d(nq * 5);
    std::vector<int64_t> l(nq * 5);
    ASSERT_OK(index->Search(base.data(), nq, 5, p, d.data(), l.data()));
    for (int64_t id : l) EXPECT_EQ(id % 2, 0) << MetricName(metric);
  }
}

TEST(VectorIndexTest, NprobeComesFromParamsWithoutMutatingTheIndex) {
  const int64_t n = 2000;
  std::vector<float> base = RandomUnitVectors(n, kDim, 4);
  ASSERT_OK_AND_ASSIGN(auto index,
                       VectorIndex::Build(TestConfig("t", kDim, "IVF32,Flat"),
                                          base.data(), n));
  // With nprobe = all lists, IVF,Flat is exact: every vector finds itself.
  IndexSearchParams all;
  all.nprobe = 32;
  std::vector<float> d(n);
  std::vector<int64_t> l(n);
  ASSERT_OK(index->Search(base.data(), n, 1, all, d.data(), l.data()));
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(l[i], i);
  // The default (nprobe 1) still misses some: the index was not changed.
  ASSERT_OK(index->Search(base.data(), n, 1, {}, d.data(), l.data()));
  std::vector<float> q = RandomUnitVectors(200, kDim, 5);
  std::vector<int64_t> l1(200), l32(200);
  std::vector<float> d1(200);
  ASSERT_OK(index->Search(q.data(), 200, 1, {}, d1.data(), l1.data()));
  ASSERT_OK(index->Search(q.data(), 200, 1, all, d1.data(), l32.data()));
  int differ = 0;
  for (int i = 0; i < 200; ++i) differ += l1[i] != l32[i];
  EXPECT_GT(differ, 0);
}

TEST(VectorIndexTest, EfSearchComesFromParams) {
  // Random 64-d data is hard for HNSW: a small efSearch misses neighbours
  // that a large one finds, so recall shows whether the parameter arrived.
  const int d = 64;
  const int64_t n = 5000;
  std::vector<float> base = RandomUnitVectors(n, d, 10);
  std::vector<float> queries = RandomUnitVectors(100, d, 11);
  ASSERT_OK_AND_ASSIGN(auto exact,
                       VectorIndex::Build(TestConfig("t", d), base.data(), n));
  CollectionConfig config = TestConfig("t", d, "HNSW8");
  config.build_params["efConstruction"] = "16";
  ASSERT_OK_AND_ASSIGN(auto hnsw, VectorIndex::Build(config, base.data(), n));
  std::vector<float> dist(100 * 10);
  std::vector<int64_t> truth(100 * 10), got(100 * 10);
  ASSERT_OK(exact->Search(queries.data(), 100, 10, {}, dist.data(), truth.data()));
  auto recall = [&](int ef) {
    IndexSearchParams p;
    p.ef_search = ef;
    EXPECT_OK(hnsw->Search(queries.data(), 100, 10, p, dist.data(), got.data()));
    int hits = 0;
    for (int q = 0; q < 100; ++q) {
      for (int i = 0; i < 10; ++i) {
        for (int j = 0; j < 10; ++j) hits += got[q * 10 + i] == truth[q * 10 + j];
      }
    }
    return hits / 1000.0;
  };
  const double low = recall(10);
  const double high = recall(500);
  EXPECT_GT(high, low + 0.1) << "low " << low << " high " << high;
  EXPECT_GT(high, 0.9);
}

// The compact walks (int8, the HNSW default, and fp16) rerank with the
// exact rows: reported scores are exact and recall matches the fp32 walk
// over the same graph, for inner product and L2.
class CompactWalkTest
    : public ::testing::TestWithParam<std::tuple<std::string, Metric>> {};

TEST_P(CompactWalkTest, KeepsRecallAndExactScores) {
  const auto& [walk, metric] = GetParam();
  const bool l2 = metric == Metric::kL2;
  const int d = 64;
  const int64_t n = 4000;
  std::vector<float> base = RandomUnitVectors(n, d, 20);
  std::vector<float> queries = RandomUnitVectors(100, d, 21);
  CollectionConfig config = TestConfig("t", d, "HNSW16", metric);
  config.build_params["efConstruction"] = "40";
  config.build_params["hnsw_walk"] = walk;
  ASSERT_OK_AND_ASSIGN(auto compact, VectorIndex::Build(config, base.data(), n));
  ASSERT_OK_AND_ASSIGN(std::string bytes, compact->Serialize());
  // A restart (the same file, the same config) walks the same copy.
  ASSERT_OK_AND_ASSIGN(auto reloaded, VectorIndex::Deserialize(config, bytes));
  EXPECT_EQ(reloaded->memory_bytes(), compact->memory_bytes());
  config.build_params["hnsw_walk"] = "fp32";
  // Same graph (same file), walked in fp32.
  ASSERT_OK_AND_ASSIGN(auto fp32, VectorIndex::Deserialize(config, bytes));
  // The copy: d bytes per row for int8 (plus scales), 2d for fp16.
  const int64_t copy = walk == "int8" ? n * d : 2 * n * d;
  EXPECT_GE(compact->memory_bytes(), fp32->memory_bytes() + copy);
  EXPECT_LT(compact->memory_bytes(), fp32->memory_bytes() + copy + 4096);
  ASSERT_OK_AND_ASSIGN(auto exact, VectorIndex::Build(TestConfig("t", d, "Flat", metric),
                                                      base.data(), n));
  std::vector<float> dt(1000), dc(1000), d32(1000);
  std::vector<int64_t> truth(1000), lc(1000), l32(1000);
  IndexSearchParams p;
  p.ef_search = 64;
  ASSERT_OK(exact->Search(queries.data(), 100, 10, {}, dt.data(), truth.data()));
  ASSERT_OK(compact->Search(queries.data(), 100, 10, p, dc.data(), lc.data()));
  ASSERT_OK(fp32->Search(queries.data(), 100, 10, p, d32.data(), l32.data()));
  std::vector<float> dr(1000);
  std::vector<int64_t> lr(1000);
  ASSERT_OK(reloaded->Search(queries.data(), 100, 10, p, dr.data(), lr.data()));
  EXPECT_EQ(lr, lc);
  EXPECT_EQ(dr, dc);
  int hits = 0, hits32 = 0;
  for (int q = 0; q < 100; ++q) {
    for (int i = 0; i < 10; ++i) {
      const int64_t id = lc[q * 10 + i];
      ASSERT_GE(id, 0);
      // Reported scores are exact, with the stored rows, best first.
      double s = 0;
      for (int j = 0; j < d; ++j) {
        const double a = queries[q * d + j], b = base[id * d + j];
        s += l2 ? (a - b) * (a - b) : a * b;
      }
      EXPECT_NEAR(dc[q * 10 + i], s, 1e-5);
      if (i > 0) {
        if (l2) {
          EXPECT_GE(dc[q * 10 + i], dc[q * 10 + i - 1]);
        } else {
          EXPECT_LE(dc[q * 10 + i], dc[q * 10 + i - 1]);
        }
      }
      for (int j = 0; j < 10; ++j) {
        hits += id == truth[q * 10 + j];
        hits32 += l32[q * 10 + i] == truth[q * 10 + j];
      }
    }
  }
  EXPECT_GT(hits32, 700);
  EXPECT_GE(hits, hits32 - 20) << walk << " " << hits << " fp32 " << hits32;
}

INSTANTIATE_TEST_SUITE_P(
    Walks, CompactWalkTest,
    ::testing::Combine(::testing::Values("int8", "fp16"),
                       ::testing::Values(Metric::kInnerProduct, Metric::kL2)),
    [](const auto& info) {
      return std::get<0>(info.param) +
             (std::get<1>(info.param) == Metric::kL2 ? "_L2" : "_IP");
    });

// With efSearch above the collection size the walk reaches every node, so
// it is exact. The visited marks are per thread and reused: a second pass,
// and a smaller index searched in between, must start from clean marks.
TEST(VectorIndexTest, HnswWalkMarksAreClearedBetweenSearches) {
  const int64_t big_n = 700, small_n = 130;
  std::vector<float> big_base = RandomUnitVectors(big_n, kDim, 30);
  std::vector<float> small_base = RandomUnitVectors(small_n, kDim, 31);
  std::vector<float> queries = RandomUnitVectors(20, kDim, 32);
  ASSERT_OK_AND_ASSIGN(auto big, VectorIndex::Build(TestConfig("t", kDim, "HNSW8"),
                                                    big_base.data(), big_n));
  ASSERT_OK_AND_ASSIGN(auto small,
                       VectorIndex::Build(TestConfig("t", kDim, "HNSW8"),
                                          small_base.data(), small_n));
  IndexSearchParams p;
  p.ef_search = 1000;
  float d;
  int64_t l;
  for (int pass = 0; pass < 2; ++pass) {
    for (int q = 0; q < 20; ++q) {
      const float* query = &queries[q * kDim];
      ASSERT_OK(big->Search(query, 1, 1, p, &d, &l));
      EXPECT_EQ(l, BruteTop1(big_base, big_n, query)) << "pass " << pass;
      ASSERT_OK(small->Search(query, 1, 1, p, &d, &l));
      EXPECT_EQ(l, BruteTop1(small_base, small_n, query)) << "pass " << pass;
    }
  }
}

TEST(VectorIndexTest, SerializeRoundTrip) {
  const int64_t n = 300;
  std::vector<float> base = RandomUnitVectors(n, kDim, 6);
  const CollectionConfig config = TestConfig("t", kDim, "HNSW16");
  ASSERT_OK_AND_ASSIGN(auto index,
                       VectorIndex::Build(config, base.data(), n));
  ASSERT_OK_AND_ASSIGN(std::string bytes, index->Serialize());
  ASSERT_OK_AND_ASSIGN(auto copy, VectorIndex::Deserialize(config, bytes));
  EXPECT_EQ(copy->size(), n);
  std::vector<float> d(5), d2(5);
  std::vector<int64_t> l(5), l2(5);
  ASSERT_OK(index->Search(base.data(), 1, 5, {}, d.data(), l.data()));
  ASSERT_OK(copy->Search(base.data(), 1, 5, {}, d2.data(), l2.data()));
  EXPECT_EQ(l, l2);
  EXPECT_THAT(VectorIndex::Deserialize(config, bytes.substr(0, 100)).status(),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(VectorIndexTest, UntrainableVersionFailsOrFallsBack) {
  std::vector<float> base = RandomUnitVectors(10, kDim, 7);
  CollectionConfig config = TestConfig("t", kDim, "IVF64,Flat");
  EXPECT_THAT(VectorIndex::Build(config, base.data(), 10).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("needs at least 64 training vectors")));
  config.flat_fallback_when_untrainable = true;
  ASSERT_OK_AND_ASSIGN(auto index, VectorIndex::Build(config, base.data(), 10));
  EXPECT_EQ(index->description(), "Flat");
}

TEST(VectorIndexTest, FaissExceptionsBecomeStatuses) {
  // PQ with more sub-quantizers than dimensions makes FAISS throw.
  std::vector<float> base = RandomUnitVectors(300, kDim, 8);
  CollectionConfig config = TestConfig("t", kDim, "PQ3");
  auto built = VectorIndex::Build(config, base.data(), 300);
  EXPECT_FALSE(built.ok());
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
