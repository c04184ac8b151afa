// IndexSpec: the FAISS index descriptions this service supports, parsed into
// their components with every parameter bounded, and the resources a build
// of one may take.
//
// FAISS's index_factory accepts strings that crash the process later
// ("IVF0,Flat" asserts at the first add, "HNSW0" segfaults, a PQ with more
// sub-quantizers than dimensions divides by zero) or that take minutes and
// tens of GB on a few hundred vectors. So a collection's description is
// parsed here, against a grammar the tests fuzz, before anything is
// persisted or handed to FAISS:
//
//   Flat
//   HNSW<M>[,Flat]              M in 4..128
//   IVF<nlist>,Flat             nlist in 1..65536
//   IVF<nlist>,PQ<m>[x<nbits>]  m divides the dimension, nbits in 4..8
//   IVF<nlist>,SQ8 | SQ4 | SQfp16
//   PQ<m>[x<nbits>]
//   SQ8 | SQ4 | SQfp16
//
// plus resource bounds that depend on the dimension (coarse quantizer,
// PQ lookup tables). Anything else is INVALID_ARGUMENT naming the part.
//
// Thread-safety: plain values and pure functions.
#ifndef RECSYS_RETRIEVAL_INDEX_SPEC_H_
#define RECSYS_RETRIEVAL_INDEX_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys {
namespace retrieval {

struct IndexSpec {
  enum class Kind { kFlat, kHnsw, kIvfFlat, kIvfPq, kIvfSq, kPq, kSq };
  Kind kind = Kind::kFlat;
  int hnsw_m = 0;     // kHnsw
  int64_t nlist = 0;  // kIvf*
  int pq_m = 0;       // kIvfPq, kPq: sub-quantizers
  int pq_nbits = 8;   // kIvfPq, kPq: bits per sub-quantizer code
  std::string sq;     // kIvfSq, kSq: "SQ8", "SQ4", "SQfp16"

  bool needs_training() const {
    return kind == Kind::kIvfFlat || kind == Kind::kIvfPq ||
           kind == Kind::kIvfSq || kind == Kind::kPq || kind == Kind::kSq;
  }
  // Fewest training vectors FAISS accepts for this index.
  int64_t min_training_vectors() const;
};

// Bounds of the grammar above.
inline constexpr int kMinHnswM = 4;
inline constexpr int kMaxHnswM = 128;
inline constexpr int64_t kMaxNlist = 65536;
inline constexpr int kMinPqBits = 4;
inline constexpr int kMaxPqBits = 8;
// Coarse quantizer (nlist x d floats) and IVF-PQ precomputed tables
// (nlist x m x 2^nbits floats) each at most this many bytes.
inline constexpr int64_t kMaxIndexTableBytes = int64_t{512} << 20;

// Parses `description` for vectors of `dimension`; INVALID_ARGUMENT naming
// `field` and the offending part (user input quoted, truncated).
absl::StatusOr<IndexSpec> ParseIndexSpec(absl::string_view description,
                                         int dimension,
                                         absl::string_view field =
                                             "config.index_factory");

// Bytes a build of `spec` over n vectors of `dimension` holds at its peak
// (entry table, index, training sample, FAISS's tables), a little high.
int64_t EstimateBuildBytes(const IndexSpec& spec, int dimension, int64_t n,
                           int64_t n_train);

// Multiply-adds of training (k-means over the sample FAISS keeps: at most
// 256 points per centroid, 25 iterations), for the build's time budget.
double EstimateTrainingFlops(const IndexSpec& spec, int dimension,
                             int64_t n_train);

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_INDEX_SPEC_H_
