// What a collection is (name, dimension, metric, FAISS index description)
// and what an entry is (a caller's key, a vector, a small payload), with the
// validation every write and query goes through before anything is applied.
//
// Plain values; no synchronisation needed. Knows nothing of gRPC.
#ifndef RECSYS_RETRIEVAL_COLLECTION_CONFIG_H_
#define RECSYS_RETRIEVAL_COLLECTION_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace recsys {
namespace retrieval {

enum class Metric { kInnerProduct, kL2, kCosine };

absl::string_view MetricName(Metric metric);

struct CollectionConfig {
  std::string name;
  int dimension = 0;
  Metric metric = Metric::kInnerProduct;
  // A faiss::index_factory description: "Flat", "HNSW32", "IVF1024,PQ16".
  std::string index_factory = "Flat";
  // IVF/PQ training sample cap; 0 means every entry of the version.
  int64_t max_training_vectors = 0;
  // Build an exact Flat index when a version is too small to train.
  bool flat_fallback_when_untrainable = false;
  // HNSW: {"efConstruction": "80", "efSearch": "64"} (efSearch: the default
  // when a request gives none); "hnsw_walk": "int8" (default), "fp16" or
  // "fp32": the row copy the graph walk reads before the exact rerank.
  std::map<std::string, std::string> build_params;
};

// Payload of an entry: (field, value) pairs sorted by field, fields unique.
// A vector of pairs, not a map: most entries carry 0-3 fields.
using Payload = std::vector<std::pair<std::string, std::string>>;

struct Entry {
  std::string key;
  std::vector<float> vector;
  Payload payload;
};

// Bounds on what one request may carry.
struct EntryLimits {
  size_t max_key_bytes = 512;                // per key
  size_t max_payload_bytes = 16 << 10;       // keys + values of one payload
  size_t max_batch_entries = 100000;         // per upsert message
};

// Checks name, dimension, metric, that the factory string is in the
// supported grammar with bounded parameters (index_spec.h) and that FAISS
// accepts it (by building an empty index of that description).
absl::Status ValidateConfig(const CollectionConfig& config);

// Largest squared norm of a vector of an inner-product or L2 collection:
// scores between two such vectors stay finite in float.
inline constexpr double kMaxSquaredNorm = 1e36;

// Checks one query/entry vector: `field` names it in the error message.
// Every component finite; for cosine collections, normalised in place (in
// double: a denormal vector becomes a finite unit vector; a zero vector is
// refused); for IP and L2 the squared norm at most kMaxSquaredNorm. So what
// is stored and what is searched is always finite.

absl::Status ValidateVector(const CollectionConfig& config,
                            absl::string_view field, std::vector<float>& v);

// DATA_LOSS naming the row when `vectors` (rows of config.dimension) holds
// a non-finite value: the check on what a build stores and a load serves.
absl::Status CheckStoredVectors(const CollectionConfig& config,
                                absl::Span<const float> vectors,
                                absl::string_view what);

// Validates a whole upsert batch (keys non-empty, unique within the batch,
// bounded; vectors; payload sizes), normalising vectors of cosine
// collections, and sorts each payload. Nothing is applied by this call; a
// non-OK result names the first bad entry by index and field.
absl::Status ValidateBatch(const CollectionConfig& config,
                           const EntryLimits& limits,
                           std::vector<Entry>& batch);

// Keys of a delete or get: non-empty and bounded.
absl::Status ValidateKeys(const EntryLimits& limits, absl::string_view field,
                          absl::Span<const std::string> keys);

// Sorts by field; the last value of a repeated field wins.
void NormalizePayload(Payload& payload);

// Lookup in a sorted payload; nullptr when absent.
const std::string* FindField(const Payload& payload, absl::string_view field);

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_COLLECTION_CONFIG_H_
