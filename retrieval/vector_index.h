// VectorIndex: the one wrapper around a FAISS index. Every FAISS call of the
// retrieval sidecar goes through here, and every FAISS exception stops here
// and becomes an absl::Status.
//
// Ids are dense: the i-th vector added gets id i. Per-query settings (nprobe,
// efSearch, an id filter) travel in faiss::SearchParameters; the shared index
// is never mutated after Build/Deserialize.
//
// Thread-safety: Build/Deserialize produce an object that is immutable
// afterwards; Search and Serialize are safe from any number of threads.
#ifndef RECSYS_RETRIEVAL_VECTOR_INDEX_H_
#define RECSYS_RETRIEVAL_VECTOR_INDEX_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "retrieval/collection_config.h"

namespace faiss {
struct Index;
struct IDSelector;
}  // namespace faiss

namespace recsys {
namespace retrieval {

struct IndexSearchParams {
  int nprobe = 0;     // IVF; 0 keeps the index's default
  int ef_search = 0;  // HNSW; 0 keeps the index's default
  // Only ids the selector accepts are returned; not owned; may be null.
  const faiss::IDSelector* selector = nullptr;
};

class VectorIndex {
 public:
  // Called with (vectors added so far, total) while building; returning
  // false cancels the build (CANCELLED).
  using ProgressFn = std::function<bool(int64_t done, int64_t total,
                                        absl::string_view phase)>;

  // Builds config.index_factory over `n` row-major vectors (already
  // normalised for cosine). Trains IVF/PQ on an evenly strided sample of at
  // most config.max_training_vectors rows. FAILED_PRECONDITION when the
  // index needs more training vectors than there are (unless the config
  // allows a Flat fallback).
  static absl::StatusOr<std::unique_ptr<VectorIndex>> Build(
      const CollectionConfig& config, const float* vectors, int64_t n,
      const ProgressFn& progress = nullptr);

  // Reads what Serialize() wrote; DATA_LOSS when FAISS cannot parse it.
  static absl::StatusOr<std::unique_ptr<VectorIndex>> Deserialize(
      const CollectionConfig& config, absl::string_view bytes);

  ~VectorIndex();

  absl::StatusOr<std::string> Serialize() const;

  // distances/labels: nq * k each; missing results have label -1.
  // REQUIRES: queries hold nq * dimension floats; 1 <= k.
  absl::Status Search(const float* queries, int64_t nq, int k,
                      const IndexSearchParams& params, float* distances,
                      int64_t* labels) const;

  int64_t size() const;
  int dimension() const;
  // The exact stored vectors (row i = id i) when the index keeps them
  // uncompressed (Flat, HNSW*Flat); nullptr otherwise.
  const float* raw_vectors() const;
  // Approximate bytes held by the index (codes, graph links, lists).
  int64_t memory_bytes() const;
  // The description actually built (differs from the config on fallback).
  const std::string& description() const { return description_; }
  bool higher_is_better() const { return higher_is_better_; }

 private:
  VectorIndex() = default;
  std::unique_ptr<faiss::Index> index_;
  std::string description_;
  bool higher_is_better_ = true;
};

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_VECTOR_INDEX_H_
