// CollectionVersion: one immutable, fully built version of a collection:
// the entries' keys and payloads, and the FAISS index over their vectors.
// Readers hold it through std::shared_ptr<const CollectionVersion>; a
// version stays usable for as long as anyone holds it, even after the
// collection unloaded it.
//
// Thread-safety: immutable after Create; every method is const and safe from
// any number of threads.
#ifndef RECSYS_RETRIEVAL_COLLECTION_VERSION_H_
#define RECSYS_RETRIEVAL_COLLECTION_VERSION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "retrieval/collection_config.h"
#include "retrieval/vector_index.h"

namespace recsys {
namespace retrieval {

// Column-wise entries of a version: id i is keys[i], payloads[i] and row i
// of vectors.
struct EntryTable {
  std::vector<std::string> keys;
  std::vector<Payload> payloads;
  std::vector<float> vectors;  // keys.size() * dimension
};

struct SearchHit {
  int64_t id = -1;
  float score = 0;
};

// One query of a (possibly batched) search.
struct VersionQuery {
  const float* vector = nullptr;  // dimension floats, validated, not owned
  int k = 10;
  std::vector<int64_t> exclude_ids;  // left out of the results
};

struct VersionSearchOptions {
  int nprobe = 0;
  int ef_search = 0;
  // Only entries whose payload has every (field, value) are returned.
  Payload payload_filter;
};

class CollectionVersion {
 public:
  // Builds the index over `table` (vectors validated and normalised).
  // `progress` as in VectorIndex::Build.
  static absl::StatusOr<std::shared_ptr<const CollectionVersion>> Build(
      int64_t version, const CollectionConfig& config, EntryTable table,
      const VectorIndex::ProgressFn& progress = nullptr);

  // Assembles a version read from disk. `table.vectors` may be empty when
  // the index keeps raw vectors itself.
  static absl::StatusOr<std::shared_ptr<const CollectionVersion>> Assemble(
      int64_t version, const CollectionConfig& config, EntryTable table,
      std::unique_ptr<VectorIndex> index, absl::Time created);

  int64_t version() const { return version_; }
  const CollectionConfig& config() const { return config_; }
  int64_t size() const { return static_cast<int64_t>(key_offsets_.size()) - 1; }
  absl::Time created() const { return created_; }
  const VectorIndex& index() const { return *index_; }
  // True when the index does not hold exact vectors and the version keeps
  // its own copy (needed to build the next version).
  bool keeps_own_vectors() const { return !own_vectors_.empty(); }

  std::optional<int64_t> Find(absl::string_view key) const;
  absl::string_view key(int64_t id) const {
    return absl::string_view(key_bytes_.data() + key_offsets_[id],
                             key_offsets_[id + 1] - key_offsets_[id]);
  }
  // Decoded on each call (payloads are stored packed).
  Payload payload(int64_t id) const;
  // Calls fn(field, value) for each field of the payload, in field order,
  // without building a Payload (views into the version's buffer).
  void ForEachPayloadField(
      int64_t id,
      absl::FunctionRef<void(absl::string_view, absl::string_view)> fn) const;
  // One field of a payload without decoding the rest; nullopt when absent.
  std::optional<absl::string_view> PayloadField(int64_t id,
                                                absl::string_view field) const;
  // The stored (normalised, for cosine) vector of `id`.
  absl::Span<const float> vector(int64_t id) const;

  // Searches every query in one FAISS call. Result i has at most
  // queries[i].k hits, best first, none of them excluded or filtered out.
  absl::StatusOr<std::vector<std::vector<SearchHit>>> Search(
      absl::Span<const VersionQuery> queries,
      const VersionSearchOptions& options) const;

  // Bytes held: index + own vectors + keys + payloads (estimated).
  int64_t memory_bytes() const { return memory_bytes_; }

 private:
  CollectionVersion()
      : key_index_(0, KeyHash{this}, KeyEq{this}) {}
  int64_t version_ = 0;
  CollectionConfig config_;
  absl::Time created_;
  // Keys and payloads are packed into one buffer each, with n + 1 offsets:
  // per entry that is the key's bytes + 8, instead of a std::string, a
  // vector of string pairs and a hash-map node (by their sizes, ~13 MB ->
  // ~3 MB for 100k short keys with empty payloads; Flat RSS after publish
  // went from 1.44x to 1.19x with the malloc settings of malloc_tuning.h).
  std::string key_bytes_;
  std::vector<uint64_t> key_offsets_;
  // Payload encoding: varint field count, then per field varint length +
  // name, varint length + value; fields sorted by name.
  std::string payload_bytes_;
  std::vector<uint64_t> payload_offsets_;
  // key -> id: a set of 32-bit ids hashed and compared through key(id).
  struct KeyHash {
    using is_transparent = void;
    const CollectionVersion* v;
    size_t operator()(uint32_t id) const;
    size_t operator()(absl::string_view key) const;
  };
  struct KeyEq {
    using is_transparent = void;
    const CollectionVersion* v;
    bool operator()(uint32_t a, uint32_t b) const {
      return a == b || v->key(a) == v->key(b);
    }
    bool operator()(uint32_t a, absl::string_view b) const;
    bool operator()(absl::string_view a, uint32_t b) const;
  };
  absl::flat_hash_set<uint32_t, KeyHash, KeyEq> key_index_;

  // Entries matching a payload filter, one bit per id.
  struct FilterBits {
    std::vector<uint8_t> bits;
    int64_t matches = 0;
  };
  // The filter's bitmap, from a small per-version cache (the same filter,
  // e.g. a category, tends to repeat; building one scans every payload).
  std::shared_ptr<const FilterBits> MatchFilter(const Payload& filter) const;
  // Bounded: at most 16 bitmaps of size() / 8 bytes each (not counted in
  // memory_bytes()).
  static constexpr size_t kFilterCacheEntries = 16;
  mutable absl::Mutex filter_mu_;
  // Key: the filter's encoding. Oldest first, for eviction.
  mutable std::vector<std::pair<std::string, std::shared_ptr<const FilterBits>>>
      filter_cache_ ABSL_GUARDED_BY(filter_mu_);

  absl::string_view PayloadBytes(int64_t id) const {
    return absl::string_view(payload_bytes_.data() + payload_offsets_[id],
                             payload_offsets_[id + 1] - payload_offsets_[id]);
  }
  std::vector<float> own_vectors_;
  const float* vectors_ = nullptr;
  std::unique_ptr<VectorIndex> index_;
  int64_t memory_bytes_ = 0;
};

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_COLLECTION_VERSION_H_
