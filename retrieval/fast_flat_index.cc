#include "retrieval/fast_flat_index.h"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <typeinfo>
#include <vector>
#include <utility>

#include "faiss/IndexHNSW.h"
#include "faiss/impl/FaissAssert.h"
#include "faiss/impl/IDSelector.h"
#include "faiss/utils/Heap.h"
#include "faiss/utils/distances.h"
#include "retrieval/distance_kernels.h"

namespace recsys {
namespace retrieval {
namespace {

// Rows scored per kernel call: 256 x 64-d floats = 64 KiB, in L2 while the
// heap pass reads the scores back.
constexpr int64_t kBlockRows = 256;

// Inner-product batches of at least this many queries score each block of
// rows for all of them in one InnerProductBlock call (three, or a last
// two, queries per pass over the rows); a single query alone.
constexpr int64_t kBlockKernelMinQueries = 2;

// Puts the better-than-worst of m scores (rows i0..) into a k-heap. C is
// faiss::CMin (inner product: keep the largest) or faiss::CMax (L2); the
// selector is asked only about rows that beat the worst kept result.
template <class C>
void KeepBest(const float* scores, int64_t m, int64_t i0, int64_t k,
              const faiss::IDSelector* selector, float* dq, faiss::Index::idx_t* lq) {
  if (std::is_same<C, faiss::CMin<float, faiss::Index::idx_t>>::value) {
    // Most scores lose to the heap's worst: skip them eight at a time.
    for (int64_t j = FirstAbove(scores, m, dq[0]); j < m;
         j += 1 + FirstAbove(scores + j + 1, m - j - 1, dq[0])) {
      if (selector != nullptr && !selector->is_member(i0 + j)) continue;
      faiss::heap_replace_top<C>(k, dq, lq, scores[j], i0 + j);
    }
    return;
  }
  for (int64_t j = 0; j < m; ++j) {
    if (!C::cmp(dq[0], scores[j])) continue;  // not better than the worst
    if (selector != nullptr && !selector->is_member(i0 + j)) continue;
    faiss::heap_replace_top<C>(k, dq, lq, scores[j], i0 + j);
  }
}

// Queries against every row, a k-heap per query. Each block of rows is
// scored against every query while it sits in L2, so the rows stream from
// memory once per batch instead of once per query.
template <class C, bool kL2>
void ScanMany(const float* x, int64_t nq, const float* base, int64_t n, int d,
              int64_t k, const faiss::IDSelector* selector, float* distances,
              faiss::Index::idx_t* labels) {
  for (int64_t q = 0; q < nq; ++q) {
    faiss::heap_heapify<C>(k, distances + q * k, labels + q * k);
  }
  if (!kL2 && nq >= kBlockKernelMinQueries) {
    std::vector<float> scores(nq * kBlockRows);
    for (int64_t i0 = 0; i0 < n; i0 += kBlockRows) {
      const int64_t m = std::min(kBlockRows, n - i0);
      InnerProductBlock(x, nq, base + i0 * d, m, d, scores.data());
      for (int64_t q = 0; q < nq; ++q) {
        KeepBest<C>(scores.data() + q * m, m, i0, k, selector, distances + q * k,
                    labels + q * k);
      }
    }
  } else {
    float scores[kBlockRows];
    for (int64_t i0 = 0; i0 < n; i0 += kBlockRows) {
      const int64_t m = std::min(kBlockRows, n - i0);
      for (int64_t q = 0; q < nq; ++q) {
        if (kL2) {
          L2SquaredMany(x + q * d, base + i0 * d, m, d, scores);
        } else {
          InnerProductMany(x + q * d, base + i0 * d, m, d, scores);
        }
        KeepBest<C>(scores, m, i0, k, selector, distances + q * k, labels + q * k);
      }
    }
  }
  for (int64_t q = 0; q < nq; ++q) {
    faiss::heap_reorder<C>(k, distances + q * k, labels + q * k);
  }
}

template <bool kL2>
class KernelDistanceComputer : public faiss::FlatCodesDistanceComputer {
 public:
  explicit KernelDistanceComputer(const FastFlatIndex& index)
      : faiss::FlatCodesDistanceComputer(index.codes.data(), index.code_size),
        d_(static_cast<int>(index.d)),
        base_(index.get_xb()) {}

  void set_query(const float* x) override { q_ = x; }

  float distance_to_code(const uint8_t* code) override {
    const float* v = reinterpret_cast<const float*>(code);
    return kL2 ? L2Squared(q_, v, d_) : InnerProduct(q_, v, d_);
  }

  float symmetric_dis(faiss::Index::idx_t i, faiss::Index::idx_t j) override {
    const float* a = base_ + i * d_;
    const float* b = base_ + j * d_;
    return kL2 ? L2Squared(a, b, d_) : InnerProduct(a, b, d_);
  }

 private:
  const int d_;
  const float* base_;
  const float* q_ = nullptr;
};

constexpr size_t kHugePage = size_t{2} << 20;

// Copies `v` into a fresh allocation advised MADV_HUGEPAGE before its pages
// are first touched. Large vectors come from their own mmap (see
// malloc_tuning.h), so the advice covers nothing else.
template <typename T>
int64_t MoveVectorToHugePages(std::vector<T>& v) {
  const size_t bytes = v.size() * sizeof(T);
  if (bytes < 4 * kHugePage) return 0;
  std::vector<T> fresh;
  fresh.reserve(v.size());
  const uintptr_t begin =
      (reinterpret_cast<uintptr_t>(fresh.data()) + kHugePage - 1) &
      ~(kHugePage - 1);
  const uintptr_t end =
      (reinterpret_cast<uintptr_t>(fresh.data()) + bytes) & ~(kHugePage - 1);
  if (end <= begin ||
      madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE) != 0) {
    return 0;  // THP unavailable: keep the original
  }
  fresh.insert(fresh.end(), v.begin(), v.end());
  v.swap(fresh);
  return static_cast<int64_t>(bytes);
}

}  // namespace

int64_t MoveToHugePages(faiss::Index* index) {
  int64_t moved = 0;
  if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index)) {
    moved += MoveVectorToHugePages(hnsw->hnsw.neighbors);
    index = hnsw->storage;
  }
  if (auto* flat = dynamic_cast<faiss::IndexFlatCodes*>(index)) {
    moved += MoveVectorToHugePages(flat->codes);
  }
  return moved;
}

void FastFlatIndex::Unmap::operator()(void* p) const { munmap(p, bytes); }

bool FastFlatIndex::BuildWalkCopy(WalkCopy kind) {
  DropWalkCopy();
  if (kind == WalkCopy::kNone || ntotal == 0) return false;
  if (kind == WalkCopy::kHalf && !HalfAvailable()) return false;
  const size_t values = static_cast<size_t>(ntotal) * d;
  const size_t bytes =
      values * (kind == WalkCopy::kHalf ? sizeof(uint16_t) : sizeof(int8_t));
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  if (bytes >= 4 * kHugePage) madvise(p, bytes, MADV_HUGEPAGE);  // best effort
  const float* x = get_xb();
  if (kind == WalkCopy::kHalf) {
    FloatToHalf(x, static_cast<int64_t>(values), static_cast<uint16_t*>(p));
  } else {
    std::vector<float> scale(d, 0.f);
    for (idx_t i = 0; i < ntotal; ++i) {
      for (int j = 0; j < d; ++j) {
        scale[j] = std::max(scale[j], std::fabs(x[i * d + j]));
      }
    }
    std::vector<float> inverse(d);
    for (int j = 0; j < d; ++j) {
      scale[j] = scale[j] > 0 ? scale[j] / 127 : 1.f;
      inverse[j] = 1.f / scale[j];
    }
    auto* codes = static_cast<int8_t*>(p);
    for (idx_t i = 0; i < ntotal; ++i) {
      for (int j = 0; j < d; ++j) {
        const float c = std::nearbyint(x[i * d + j] * inverse[j]);
        codes[i * d + j] =
            static_cast<int8_t>(std::max(-127.f, std::min(127.f, c)));
      }
    }
    int8_scale_.swap(scale);
  }
  walk_ = std::unique_ptr<void, Unmap>(p, Unmap{bytes});
  walk_kind_ = kind;
  return true;
}

void FastFlatIndex::DropWalkCopy() {
  walk_.reset();
  walk_.get_deleter().bytes = 0;
  walk_kind_ = WalkCopy::kNone;
  int8_scale_.clear();
}

FastFlatIndex::FastFlatIndex(int d, faiss::MetricType metric)
    : faiss::IndexFlat(d, metric) {
  FAISS_THROW_IF_NOT_MSG(
      metric == faiss::METRIC_INNER_PRODUCT || metric == faiss::METRIC_L2,
      "FastFlatIndex supports inner product and L2 only");
}

std::unique_ptr<FastFlatIndex> FastFlatIndex::TakeFrom(faiss::IndexFlat* flat) {
  if (flat->metric_type != faiss::METRIC_INNER_PRODUCT &&
      flat->metric_type != faiss::METRIC_L2) {
    return nullptr;
  }
  auto out = std::make_unique<FastFlatIndex>(static_cast<int>(flat->d),
                                             flat->metric_type);
  out->codes.swap(flat->codes);
  out->ntotal = flat->ntotal;
  out->verbose = flat->verbose;
  flat->ntotal = 0;
  return out;
}

void FastFlatIndex::search(idx_t n, const float* x, idx_t k, float* distances,
                           idx_t* labels,
                           const faiss::SearchParameters* params) const {
  FAISS_THROW_IF_NOT(k > 0);
  if (n >= kBlasMinBatch && metric_type == faiss::METRIC_L2) {
    // Large L2 batches: FAISS's BLAS path (sgemm's register blocking wins
    // once there are enough queries to fill it). Inner-product batches of
    // any size stay on InnerProductBlock, which beat single-threaded
    // OpenBLAS sgemm + FAISS's heaps at 32-255 queries (retrieval/README.md).
    faiss::IndexFlat::search(n, x, k, distances, labels, params);
    return;
  }
  const faiss::IDSelector* selector = params != nullptr ? params->sel : nullptr;
  const int dim = static_cast<int>(d);
  if (metric_type == faiss::METRIC_L2) {
    ScanMany<faiss::CMax<float, idx_t>, true>(x, n, get_xb(), ntotal, dim, k,
                                              selector, distances, labels);
  } else {
    ScanMany<faiss::CMin<float, idx_t>, false>(x, n, get_xb(), ntotal, dim, k,
                                               selector, distances, labels);
  }
}

void FastFlatIndex::add(idx_t n, const float* x) {
  DropWalkCopy();  // would no longer cover every row
  faiss::IndexFlat::add(n, x);
}

void FastFlatIndex::reset() {
  DropWalkCopy();
  faiss::IndexFlat::reset();
}

faiss::FlatCodesDistanceComputer* FastFlatIndex::get_FlatCodesDistanceComputer()
    const {
  if (metric_type == faiss::METRIC_L2) {
    return new KernelDistanceComputer<true>(*this);
  }
  return new KernelDistanceComputer<false>(*this);
}

faiss::Index* UseFastFlat(faiss::Index* index) {
  if (dynamic_cast<FastFlatIndex*>(index) != nullptr) return index;
  if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index)) {
    auto* storage = dynamic_cast<faiss::IndexFlat*>(hnsw->storage);
    if (storage == nullptr || dynamic_cast<FastFlatIndex*>(storage) != nullptr ||
        !hnsw->own_fields) {
      return index;
    }
    std::unique_ptr<FastFlatIndex> fast = FastFlatIndex::TakeFrom(storage);
    if (fast != nullptr) {
      delete hnsw->storage;
      hnsw->storage = fast.release();
    }
    return index;
  }
  auto* flat = dynamic_cast<faiss::IndexFlat*>(index);
  // Only the plain Flat classes: subclasses (IndexFlat1D, ...) keep theirs.
  if (flat == nullptr ||
      (typeid(*flat) != typeid(faiss::IndexFlat) &&
       typeid(*flat) != typeid(faiss::IndexFlatIP) &&
       typeid(*flat) != typeid(faiss::IndexFlatL2))) {
    return index;
  }
  std::unique_ptr<FastFlatIndex> fast = FastFlatIndex::TakeFrom(flat);
  if (fast == nullptr) return index;
  delete index;
  return fast.release();
}

}  // namespace retrieval
}  // namespace recsys
