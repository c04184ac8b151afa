#include "retrieval/collection_version.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "faiss/impl/IDSelector.h"
#include "retrieval/background_free.h"
#include "retrieval/record_io.h"

namespace recsys {
namespace retrieval {
namespace {

// In memory a payload is a varint field count, then varint-prefixed field
// and value per field (record_io's file encoding spends 4 bytes per length).
void EncodePayload(const Payload& p, std::string* out) {
  RecordWriter w(out);
  w.PutVarint(p.size());
  for (const auto& [field, value] : p) {
    w.PutVarintString(field);
    w.PutVarintString(value);
  }
}

// Reads what EncodePayload wrote (our own bytes; still, a short buffer ends
// the walk instead of reading past it).
class PayloadReader {
 public:
  explicit PayloadReader(absl::string_view bytes) : r_(bytes) {
    uint64_t n = 0;
    remaining_ = r_.GetVarint(&n) ? n : 0;
  }
  bool Next(absl::string_view* field, absl::string_view* value) {
    if (remaining_ == 0) return false;
    --remaining_;
    if (r_.GetVarintString(field) && r_.GetVarintString(value)) return true;
    remaining_ = 0;
    return false;
  }

 private:
  RecordReader r_;
  uint64_t remaining_ = 0;
};

}  // namespace

absl::StatusOr<std::shared_ptr<const CollectionVersion>>
CollectionVersion::Build(int64_t version, const CollectionConfig& config,
                         EntryTable table,
                         const VectorIndex::ProgressFn& progress) {
  if (table.vectors.size() != table.keys.size() * config.dimension ||
      table.payloads.size() != table.keys.size()) {
    return absl::InternalError("entry table columns disagree in length");
  }
  auto index = VectorIndex::Build(config, table.vectors.data(),
                                  static_cast<int64_t>(table.keys.size()),
                                  progress);
  if (!index.ok()) return index.status();
  if ((*index)->raw_vectors() != nullptr) {
    // The index holds the exact vectors: don't keep a second copy.
    std::vector<float>().swap(table.vectors);
  }
  return Assemble(version, config, std::move(table), *std::move(index),
                  absl::Now());
}

absl::StatusOr<std::shared_ptr<const CollectionVersion>>
CollectionVersion::Assemble(int64_t version, const CollectionConfig& config,
                            EntryTable table,
                            std::unique_ptr<VectorIndex> index,
                            absl::Time created) {
  const int64_t n = static_cast<int64_t>(table.keys.size());
  if (index->size() != n || table.payloads.size() != table.keys.size()) {
    return absl::DataLossError(absl::StrCat("version ", version, " has ", n,
                                            " keys but its index has ",
                                            index->size(), " vectors"));
  }
  if (index->raw_vectors() == nullptr &&
      table.vectors.size() != static_cast<size_t>(n) * config.dimension) {
    return absl::DataLossError(absl::StrCat(
        "version ", version, " lacks the raw vectors its index cannot give"));
  }
  if (n >= static_cast<int64_t>(std::numeric_limits<uint32_t>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat("version ", version, " has ", n,
                     " entries; at most 2^32 - 2 are supported"));
  }
  auto v = std::unique_ptr<CollectionVersion>(new CollectionVersion());
  v->version_ = version;
  v->config_ = config;
  v->created_ = created;
  size_t key_total = 0;
  for (const std::string& k : table.keys) key_total += k.size();
  v->key_bytes_.reserve(key_total);
  v->key_offsets_.reserve(n + 1);
  v->key_offsets_.push_back(0);
  v->payload_offsets_.reserve(n + 1);
  v->payload_offsets_.push_back(0);
  for (int64_t i = 0; i < n; ++i) {
    v->key_bytes_.append(table.keys[i]);
    v->key_offsets_.push_back(v->key_bytes_.size());
    std::string().swap(table.keys[i]);  // keep the peak near one copy
    EncodePayload(table.payloads[i], &v->payload_bytes_);
    v->payload_offsets_.push_back(v->payload_bytes_.size());
    Payload().swap(table.payloads[i]);
  }
  v->payload_bytes_.shrink_to_fit();
  std::vector<std::string>().swap(table.keys);
  std::vector<Payload>().swap(table.payloads);
  v->index_ = std::move(index);
  if (v->index_->raw_vectors() != nullptr) {
    v->vectors_ = v->index_->raw_vectors();
  } else {
    v->own_vectors_ = std::move(table.vectors);
    v->vectors_ = v->own_vectors_.data();
  }
  v->key_index_.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    if (!v->key_index_.insert(static_cast<uint32_t>(i)).second) {
      return absl::DataLossError(absl::StrCat(
          "version ", version, " has the key '", v->key(i), "' twice"));
    }
  }
  v->memory_bytes_ =
      v->index_->memory_bytes() +
      static_cast<int64_t>(v->own_vectors_.capacity() * sizeof(float) +
                           v->key_bytes_.capacity() +
                           v->key_offsets_.capacity() * sizeof(uint64_t) +
                           v->payload_bytes_.capacity() +
                           v->payload_offsets_.capacity() * sizeof(uint64_t) +
                           v->key_index_.capacity() * (sizeof(uint32_t) + 1));
  // Freed off the search path and outside the collection's locks.
  return SharedFreedInBackground(std::move(v));
}

size_t CollectionVersion::KeyHash::operator()(uint32_t id) const {
  return absl::Hash<absl::string_view>()(v->key(id));
}
size_t CollectionVersion::KeyHash::operator()(absl::string_view key) const {
  return absl::Hash<absl::string_view>()(key);
}
bool CollectionVersion::KeyEq::operator()(uint32_t a,
                                          absl::string_view b) const {
  return v->key(a) == b;
}
bool CollectionVersion::KeyEq::operator()(absl::string_view a,
                                          uint32_t b) const {
  return a == v->key(b);
}

std::optional<int64_t> CollectionVersion::Find(absl::string_view key) const {
  auto it = key_index_.find(key);
  if (it == key_index_.end()) return std::nullopt;
  return static_cast<int64_t>(*it);
}

void CollectionVersion::ForEachPayloadField(
    int64_t id,
    absl::FunctionRef<void(absl::string_view, absl::string_view)> fn) const {
  PayloadReader r(PayloadBytes(id));
  absl::string_view field, value;
  while (r.Next(&field, &value)) fn(field, value);
}

Payload CollectionVersion::payload(int64_t id) const {
  Payload out;
  ForEachPayloadField(id, [&](absl::string_view field, absl::string_view value) {
    out.emplace_back(field, value);
  });
  return out;
}

std::optional<absl::string_view> CollectionVersion::PayloadField(
    int64_t id, absl::string_view field) const {
  PayloadReader r(PayloadBytes(id));
  absl::string_view f, value;
  while (r.Next(&f, &value)) {
    if (f == field) return value;
    if (f > field) break;  // sorted by field
  }
  return std::nullopt;
}

absl::Span<const float> CollectionVersion::vector(int64_t id) const {
  return absl::Span<const float>(vectors_ + id * config_.dimension,
                                 config_.dimension);
}

std::shared_ptr<const CollectionVersion::FilterBits>
CollectionVersion::MatchFilter(const Payload& filter) const {
  std::string key;
  EncodePayload(filter, &key);
  {
    absl::MutexLock l(&filter_mu_);
    for (const auto& [k, bits] : filter_cache_) {
      if (k == key) return bits;
    }
  }
  // Built outside the lock: concurrent first uses may both build it.
  auto out = std::make_shared<FilterBits>();
  const int64_t n = size();
  out->bits.assign((n + 7) / 8, 0);
  for (int64_t i = 0; i < n; ++i) {
    bool ok = true;
    for (const auto& [field, value] : filter) {
      std::optional<absl::string_view> have = PayloadField(i, field);
      if (!have.has_value() || *have != value) {
        ok = false;
        break;
      }
    }
    if (ok) {
      out->bits[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
      ++out->matches;
    }
  }
  absl::MutexLock l(&filter_mu_);
  if (filter_cache_.size() >= kFilterCacheEntries) {
    filter_cache_.erase(filter_cache_.begin());
  }
  filter_cache_.emplace_back(std::move(key), out);
  return out;
}

absl::StatusOr<std::vector<std::vector<SearchHit>>> CollectionVersion::Search(
    absl::Span<const VersionQuery> queries,
    const VersionSearchOptions& options) const {
  std::vector<std::vector<SearchHit>> results(queries.size());
  const int64_t n = size();
  if (queries.empty() || n == 0) return results;
  const int d = config_.dimension;

  // Exclusions differ per query while one FAISS call serves the batch: ask
  // for k + |excluded| and drop the excluded afterwards. That is exact: at
  // most |excluded| of the candidates can be dropped.
  int64_t fetch = 0;
  for (const VersionQuery& q : queries) {
    fetch = std::max<int64_t>(fetch, q.k + static_cast<int64_t>(
                                               q.exclude_ids.size()));
  }
  fetch = std::min(fetch, n);

  // A payload filter is shared by the batch: FAISS applies it as an id
  // selector inside the search, so filtered results are still the best k.
  std::shared_ptr<const FilterBits> filter;
  std::unique_ptr<faiss::IDSelectorBitmap> selector;
  if (!options.payload_filter.empty()) {
    filter = MatchFilter(options.payload_filter);
    if (filter->matches == 0) return results;
    selector = std::make_unique<faiss::IDSelectorBitmap>(filter->bits.size(),
                                                         filter->bits.data());
  }

  std::vector<float> packed;
  const float* x = queries[0].vector;
  if (queries.size() > 1) {
    packed.resize(queries.size() * d);
    for (size_t i = 0; i < queries.size(); ++i) {
      std::memcpy(&packed[i * d], queries[i].vector, sizeof(float) * d);
    }
    x = packed.data();
  }
  std::vector<float> distances(queries.size() * fetch);
  std::vector<int64_t> labels(queries.size() * fetch);
  IndexSearchParams params;
  params.nprobe = options.nprobe;
  params.ef_search = options.ef_search;
  params.selector = selector.get();
  absl::Status s = index_->Search(x, static_cast<int64_t>(queries.size()),
                                  static_cast<int>(fetch), params,
                                  distances.data(), labels.data());
  if (!s.ok()) return s;

  for (size_t q = 0; q < queries.size(); ++q) {
    const VersionQuery& query = queries[q];
    std::vector<int64_t> excluded = query.exclude_ids;
    std::sort(excluded.begin(), excluded.end());
    auto& out = results[q];
    out.reserve(query.k);
    for (int64_t j = 0; j < fetch && static_cast<int>(out.size()) < query.k;
         ++j) {
      const int64_t id = labels[q * fetch + j];
      if (id < 0 || id >= n) continue;
      if (std::binary_search(excluded.begin(), excluded.end(), id)) continue;
      out.push_back({id, distances[q * fetch + j]});
    }
  }
  return results;
}

}  // namespace retrieval
}  // namespace recsys
