// FastFlatIndex: a faiss::IndexFlat (inner product or L2) whose scans use
// the runtime-dispatched kernels of distance_kernels.h.
//
// It is an IndexFlat in every other respect: same storage (`codes`), same
// add/reconstruct, and faiss::write_index writes it as a plain IndexFlatIP /
// IndexFlatL2, so snapshots stay readable by stock FAISS. Two overrides:
//  - search() with fewer than kBlasMinBatch queries scans with our kernels:
//    blocks of rows that stay in L2 while every query of the batch is
//    scored against them, a k-heap per query, the IDSelector consulted only
//    for rows that would enter a heap. Larger batches keep FAISS's BLAS
//    path. Measured per query on 100k x 64 (retrieval_bench --batch_sweep):
//    see retrieval/README.md.
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

  // Both drop the fp16 copy (BuildHalfCopy), which would no longer match.
  void add(idx_t n, const float* x) override;
  void reset() override;

  void search(idx_t n, const float* x, idx_t k, float* distances,
              idx_t* labels,
              const faiss::SearchParameters* params = nullptr) const override;

  faiss::FlatCodesDistanceComputer* get_FlatCodesDistanceComputer()
      const override;

  // An fp16 copy of the rows (2 bytes per dimension) for approximate graph
  // walks that rerank with the exact rows. Returns false (and keeps none)
  // when the CPU lacks F16C. Call after the last add, before sharing.
  bool BuildHalfCopy();
  // nullptr unless BuildHalfCopy() succeeded. Rows start on 64-byte
  // boundaries when 2 * d is a multiple of 64 (the copy is page aligned).
  const uint16_t* half() const {
    return static_cast<const uint16_t*>(half_.get());
  }
  int64_t half_bytes() const { return static_cast<int64_t>(half_bytes_); }

 private:
  struct Unmap {
    size_t bytes;
    void operator()(void* p) const;
  };
  // Its own mapping, advised for huge pages before it is first touched.
  std::unique_ptr<void, Unmap> half_{nullptr, Unmap{0}};
  size_t half_bytes_ = 0;
};

// Replaces a plain Flat index, or the Flat storage of an IndexHNSW, by a
// FastFlatIndex holding the same vectors. Returns the index to use (the
// argument itself for HNSW and for anything it does not apply to).
faiss::Index* UseFastFlat(faiss::Index* index);

// Moves the large arrays that searches read at random (Flat vectors, HNSW
// neighbour lists; the fp16 copy is born there) into memory advised for transparent huge pages, so a
// random row costs one TLB entry per 2 MiB instead of per 4 KiB. A no-op
// for small arrays and where the kernel has THP off. Returns the number of
// bytes moved. Call before the index is shared (it reallocates).
int64_t MoveToHugePages(faiss::Index* index);

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_FAST_FLAT_INDEX_H_
