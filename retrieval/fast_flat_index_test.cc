#include "retrieval/fast_flat_index.h"

#include <cmath>
#include <memory>
#include <vector>

#include "faiss/IndexHNSW.h"
#include "faiss/impl/IDSelector.h"
#include "faiss/index_factory.h"
#include "faiss/index_io.h"
#include "faiss/impl/io.h"
#include "faiss/utils/distances.h"
#include "gtest/gtest.h"
#include "retrieval/test_util.h"

namespace recsys {
namespace retrieval {
namespace {

using idx_t = faiss::Index::idx_t;

struct Results {
  std::vector<float> distances;
  std::vector<idx_t> labels;
};

Results Search(const faiss::Index& index, const std::vector<float>& queries,
               int k, const faiss::SearchParameters* params = nullptr) {
  const idx_t nq = queries.size() / index.d;
  Results r{std::vector<float>(nq * k), std::vector<idx_t>(nq * k)};
  index.search(nq, queries.data(), k, r.distances.data(), r.labels.data(),
               params);
  return r;
}

// Same ids in the same order as stock FAISS, scores to float rounding.
void ExpectSameResults(const Results& want, const Results& got) {
  ASSERT_EQ(want.labels.size(), got.labels.size());
  for (size_t i = 0; i < want.labels.size(); ++i) {
    EXPECT_EQ(want.labels[i], got.labels[i]) << "slot " << i;
    EXPECT_NEAR(want.distances[i], got.distances[i], 1e-4) << "slot " << i;
  }
}

// Stock FAISS and FastFlatIndex over the same n random vectors.
struct SameVectors {
  SameVectors(int d, int n, uint32_t seed, faiss::MetricType metric)
      : stock(d, metric), fast(d, metric) {
    std::vector<float> base = RandomUnitVectors(n, d, seed);
    stock.add(n, base.data());
    fast.add(n, base.data());
  }
  faiss::IndexFlat stock;
  FastFlatIndex fast;
};

// SearchParameters whose selector accepts every `step`-th id of n.
struct EveryNth {
  EveryNth(int n, int step) : bits((n + 7) / 8, 0), selector(bits.size(), nullptr) {
    for (int i = 0; i < n; i += step) bits[i >> 3] |= 1 << (i & 7);
    selector.bitmap = bits.data();
    params.sel = &selector;
  }
  std::vector<uint8_t> bits;
  faiss::IDSelectorBitmap selector;
  faiss::SearchParameters params;
};

class FastFlatIndexTest : public ::testing::TestWithParam<faiss::MetricType> {};

TEST_P(FastFlatIndexTest, SingleQueriesMatchStockFaiss) {
  for (int d : {3, 64, 100}) {
    const int n = 5000;
    std::vector<float> base = RandomUnitVectors(n, d, 1);
    std::vector<float> queries = RandomUnitVectors(20, d, 2);
    faiss::IndexFlat stock(d, GetParam());
    FastFlatIndex fast(d, GetParam());
    stock.add(n, base.data());
    fast.add(n, base.data());
    for (int q = 0; q < 20; ++q) {
      std::vector<float> one(queries.begin() + q * d,
                             queries.begin() + (q + 1) * d);
      ExpectSameResults(Search(stock, one, 10), Search(fast, one, 10));
    }
  }
}

TEST_P(FastFlatIndexTest, KLargerThanTheIndexPadsLikeFaiss) {
  const int d = 16;
  std::vector<float> base = RandomUnitVectors(5, d, 3);
  std::vector<float> query = RandomUnitVectors(1, d, 4);
  faiss::IndexFlat stock(d, GetParam());
  FastFlatIndex fast(d, GetParam());
  stock.add(5, base.data());
  fast.add(5, base.data());
  Results want = Search(stock, query, 8), got = Search(fast, query, 8);
  ExpectSameResults(want, got);
  EXPECT_EQ(got.labels[5], -1);
  EXPECT_EQ(got.labels[7], -1);
}

TEST_P(FastFlatIndexTest, SelectorFiltersInsideTheScan) {
  const int d = 32, n = 3000;
  SameVectors idx(d, n, 5, GetParam());
  EveryNth third(n, 3);
  std::vector<float> query = RandomUnitVectors(1, d, 6);
  Results got = Search(idx.fast, query, 10, &third.params);
  ExpectSameResults(Search(idx.stock, query, 10, &third.params), got);
  for (idx_t id : got.labels) EXPECT_EQ(id % 3, 0) << id;
}

// Batches below kBlasMinBatch (blocked kernels, with a selector too) and at
// it (FAISS's BLAS path for L2, the block kernel for inner product) give
// stock FAISS's answers.
TEST_P(FastFlatIndexTest, BatchesOnBothPathsMatch) {
  const int d = 24, n = 2000;
  SameVectors idx(d, n, 7, GetParam());
  EveryNth even(n, 2);
  for (int nq : {2, 4, 5, 7, 40, int(FastFlatIndex::kBlasMinBatch)}) {
    std::vector<float> queries = RandomUnitVectors(nq, d, 8 + nq);
    ExpectSameResults(Search(idx.stock, queries, 5), Search(idx.fast, queries, 5));
    ExpectSameResults(Search(idx.stock, queries, 5, &even.params),
                      Search(idx.fast, queries, 5, &even.params));
  }
}

// Inner-product batches of 4+ queries score transposed blocks of rows: row
// counts that end mid-tile and dimensions without 8-lane steps too.
TEST_P(FastFlatIndexTest, BlockKernelBatchesMatchAtOddSizes) {
  for (int d : {20, 64}) {
    const int n = 2003;
    SameVectors idx(d, n, 21 + d, GetParam());
    EveryNth third(n, 3);
    for (int nq : {4, 9, 31}) {
      std::vector<float> queries = RandomUnitVectors(nq, d, 30 + nq);
      ExpectSameResults(Search(idx.stock, queries, 17), Search(idx.fast, queries, 17));
      ExpectSameResults(Search(idx.stock, queries, 17, &third.params),
                        Search(idx.fast, queries, 17, &third.params));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Metrics, FastFlatIndexTest,
                         ::testing::Values(faiss::METRIC_INNER_PRODUCT,
                                           faiss::METRIC_L2));

TEST(FastFlatIndexStandaloneTest, SerializesAsAPlainFlatIndex) {
  const int d = 8;
  std::vector<float> base = RandomUnitVectors(100, d, 9);
  FastFlatIndex fast(d, faiss::METRIC_INNER_PRODUCT);
  fast.add(100, base.data());
  faiss::VectorIOWriter writer;
  faiss::write_index(&fast, &writer);
  faiss::VectorIOReader reader;
  reader.data = writer.data;
  std::unique_ptr<faiss::Index> back(faiss::read_index(&reader));
  EXPECT_NE(dynamic_cast<faiss::IndexFlatIP*>(back.get()), nullptr);
  EXPECT_EQ(back->ntotal, 100);
  std::unique_ptr<faiss::Index> converted(UseFastFlat(back.release()));
  ASSERT_NE(dynamic_cast<FastFlatIndex*>(converted.get()), nullptr);
  std::vector<float> query = RandomUnitVectors(1, d, 10);
  ExpectSameResults(Search(fast, query, 5), Search(*converted, query, 5));
}

TEST(FastFlatIndexStandaloneTest, AddingRowsDropsTheWalkCopy) {
  const int d = 16;
  std::vector<float> base = RandomUnitVectors(20, d, 13);
  FastFlatIndex fast(d, faiss::METRIC_INNER_PRODUCT);
  fast.add(10, base.data());
  ASSERT_TRUE(fast.BuildWalkCopy(FastFlatIndex::WalkCopy::kInt8));
  EXPECT_NE(fast.int8(), nullptr);
  EXPECT_EQ(fast.half(), nullptr);
  EXPECT_EQ(fast.walk_copy_bytes(), 10 * d + d * 4);  // codes + scales
  fast.add(10, base.data() + 10 * d);
  EXPECT_EQ(fast.int8(), nullptr);
  EXPECT_EQ(fast.walk_copy(), FastFlatIndex::WalkCopy::kNone);
  EXPECT_EQ(fast.walk_copy_bytes(), 0);
  if (!fast.BuildWalkCopy(FastFlatIndex::WalkCopy::kHalf)) {
    GTEST_SKIP() << "no F16C on this CPU";
  }
  EXPECT_NE(fast.half(), nullptr);
  EXPECT_EQ(fast.int8(), nullptr);
  EXPECT_EQ(fast.walk_copy_bytes(), 20 * d * 2);
  fast.reset();
  EXPECT_EQ(fast.half(), nullptr);
}

// Each int8 value decodes to within half a quantization step of the row;
// the largest magnitude of each dimension is exact up to float rounding.
TEST(FastFlatIndexStandaloneTest, Int8CopyDecodesWithinHalfAStep) {
  const int d = 24, n = 300;
  std::vector<float> base = RandomUnitVectors(n, d, 14);
  for (int j = 0; j < d; ++j) base[5 * d + j] *= 3;  // a wider row
  FastFlatIndex fast(d, faiss::METRIC_L2);
  fast.add(n, base.data());
  ASSERT_TRUE(fast.BuildWalkCopy(FastFlatIndex::WalkCopy::kInt8));
  for (int j = 0; j < d; ++j) {
    const float step = fast.int8_scale()[j];
    EXPECT_GT(step, 0);
    float max_abs = 0;
    for (int i = 0; i < n; ++i) {
      const float x = base[i * d + j];
      max_abs = std::max(max_abs, std::fabs(x));
      EXPECT_NEAR(fast.int8()[i * d + j] * step, x, 0.5f * step + 1e-6f);
    }
    EXPECT_NEAR(step * 127, max_abs, 1e-5f);
  }
}

TEST(FastFlatIndexStandaloneTest, LeavesOtherIndexTypesAlone) {
  std::unique_ptr<faiss::Index> ivf(faiss::index_factory(8, "IVF4,Flat"));
  faiss::Index* raw = ivf.get();
  EXPECT_EQ(UseFastFlat(raw), raw);
}

// HNSW built over FastFlat storage finds the same neighbours as over stock
// storage: the graph is built with our distances, and recall stays high.
TEST(FastFlatIndexStandaloneTest, HnswStorageIsReplacedAndStillAccurate) {
  const int d = 32, n = 4000;
  std::vector<float> base = RandomUnitVectors(n, d, 11);
  std::vector<float> queries = RandomUnitVectors(50, d, 12);
  std::unique_ptr<faiss::Index> hnsw(UseFastFlat(
      faiss::index_factory(d, "HNSW16", faiss::METRIC_INNER_PRODUCT)));
  auto* h = dynamic_cast<faiss::IndexHNSW*>(hnsw.get());
  ASSERT_NE(h, nullptr);
  ASSERT_NE(dynamic_cast<FastFlatIndex*>(h->storage), nullptr);
  h->hnsw.efSearch = 128;
  hnsw->add(n, base.data());
  faiss::IndexFlatIP exact(d);
  exact.add(n, base.data());
  Results want = Search(exact, queries, 10), got = Search(*hnsw, queries, 10);
  int hits = 0;
  for (int q = 0; q < 50; ++q) {
    for (int i = 0; i < 10; ++i) {
      for (int j = 0; j < 10; ++j) hits += got.labels[q * 10 + i] == want.labels[q * 10 + j];
    }
  }
  EXPECT_GE(hits / 500.0, 0.95);
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
