// FastFlatIndex: a faiss::IndexFlat (inner product or L2) whose scans use
// the runtime-dispatched kernels of distance_kernels.h.
//
// It is an IndexFlat in every other respect: same storage (`codes`), same
// add/reconstruct, and faiss::write_index writes it as a plain IndexFlatIP /
// IndexFlatL2, so snapshots stay readable by stock FAISS. Two overrides:
//  - search() scans with our kernels, in blocks of rows that stay in L2
//    while every query of the batch is scored against them (inner-product
//    batches of 3+ queries three at a time per pass over the rows:
//    InnerProductBlock), a k-heap per query, the IDSelector consulted only
//    for rows that would enter a heap. L2 batches of kBlasMinBatch or more
//    keep FAISS's BLAS path. Measured per query (retrieval_bench
//    --batch_sweep): see retrieval/README.md.
//  - the distance computer (used by HNSW build and search when this is an
//    IndexHNSW's storage) uses our kernels too.
// Results have FAISS's layout: sorted best first, missing slots labelled -1
// with the metric's worst value.
//
// Thread-safety: as IndexFlat (concurrent const calls are safe).
#ifndef RECSYS_RETRIEVAL_FAST_FLAT_INDEX_H_
#define RECSYS_RETRIEVAL_FAST_FLAT_INDEX_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "faiss/IndexFlat.h"

namespace recsys {
namespace retrieval {

class FastFlatIndex : public faiss::IndexFlat {
 public:
  static constexpr int64_t kBlasMinBatch = 32;

  // REQUIRES: metric is METRIC_INNER_PRODUCT or METRIC_L2.
  FastFlatIndex(int d, faiss::MetricType metric);

  // Takes over the vectors of `flat` (left empty). nullptr when `flat`'s
  // metric is neither inner product nor L2.
  static std::unique_ptr<FastFlatIndex> TakeFrom(faiss::IndexFlat* flat);

  // Both drop the walk copy (BuildWalkCopy), which would no longer match.
  void add(idx_t n, const float* x) override;
  void reset() override;

  void search(idx_t n, const float* x, idx_t k, float* distances,
              idx_t* labels,
              const faiss::SearchParameters* params = nullptr) const override;

  faiss::FlatCodesDistanceComputer* get_FlatCodesDistanceComputer()
      const override;

  // A compact copy of the rows for approximate graph walks that rerank with
  // the exact rows: fp16 (2 bytes per value, needs F16C) or int8 (1 byte,
  // symmetric per-dimension scale max|x_j| / 127, any CPU). Each lives in
  // its own page-aligned mapping advised for huge pages, so rows whose size
  // is a multiple of 64 bytes start on a cache line. Returns false (and
  // keeps none) when the CPU lacks F16C for kHalf or the memory is not
  // there. Call after the last add, before sharing.
  enum class WalkCopy { kNone, kHalf, kInt8 };
  bool BuildWalkCopy(WalkCopy kind);
  WalkCopy walk_copy() const { return walk_kind_; }
  // Non-null only for the copy that was built.
  const uint16_t* half() const {
    return walk_kind_ == WalkCopy::kHalf
               ? static_cast<const uint16_t*>(walk_.get())
               : nullptr;
  }
  const int8_t* int8() const {
    return walk_kind_ == WalkCopy::kInt8 ? static_cast<const int8_t*>(walk_.get())
                                         : nullptr;
  }
  // Row value j of the int8 copy is int8()[i * d + j] * int8_scale()[j].
  const float* int8_scale() const { return int8_scale_.data(); }
  int64_t walk_copy_bytes() const {
    return static_cast<int64_t>(walk_.get_deleter().bytes +
                                int8_scale_.size() * sizeof(float));
  }

 private:
  void DropWalkCopy();
  struct Unmap {
    size_t bytes;
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Unmap> walk_{nullptr, Unmap{0}};
  WalkCopy walk_kind_ = WalkCopy::kNone;
  std::vector<float> int8_scale_;
};

// Replaces a plain Flat index, or the Flat storage of an IndexHNSW, by a
// FastFlatIndex holding the same vectors. Returns the index to use (the
// argument itself for HNSW and for anything it does not apply to).
faiss::Index* UseFastFlat(faiss::Index* index);

// Moves the large arrays that searches read at random (Flat vectors, HNSW
// neighbour lists; walk copies are born there) into memory advised for
// transparent huge pages, so a random row costs one TLB entry per 2 MiB
// instead of per 4 KiB. A no-op for small arrays and where the kernel has
// THP off. Returns the number of bytes moved. Call before the index is
// shared (it reallocates).
int64_t MoveToHugePages(faiss::Index* index);

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_FAST_FLAT_INDEX_H_
