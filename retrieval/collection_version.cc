#include "retrieval/collection_version.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "faiss/impl/IDSelector.h"

namespace recsys {
namespace retrieval {

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
  auto v = std::shared_ptr<CollectionVersion>(new CollectionVersion());
  v->version_ = version;
  v->config_ = config;
  v->created_ = created;
  v->keys_ = std::move(table.keys);
  v->payloads_ = std::move(table.payloads);
  v->index_ = std::move(index);
  if (v->index_->raw_vectors() != nullptr) {
    v->vectors_ = v->index_->raw_vectors();
  } else {
    v->own_vectors_ = std::move(table.vectors);
    v->vectors_ = v->own_vectors_.data();
  }
  v->key_to_id_.reserve(n);
  int64_t key_bytes = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!v->key_to_id_.emplace(v->keys_[i], i).second) {
      return absl::DataLossError(absl::StrCat(
          "version ", version, " has the key '", v->keys_[i], "' twice"));
    }
    key_bytes += sizeof(std::string) + v->keys_[i].capacity() + 32 +
                 sizeof(Payload);
    for (const auto& kv : v->payloads_[i]) {
      key_bytes += 2 * sizeof(std::string) + kv.first.capacity() +
                   kv.second.capacity();
    }
  }
  v->memory_bytes_ = v->index_->memory_bytes() +
                     v->own_vectors_.size() * sizeof(float) + key_bytes;
  return std::shared_ptr<const CollectionVersion>(std::move(v));
}

std::optional<int64_t> CollectionVersion::Find(absl::string_view key) const {
  auto it = key_to_id_.find(key);
  if (it == key_to_id_.end()) return std::nullopt;
  return it->second;
}

absl::Span<const float> CollectionVersion::vector(int64_t id) const {
  return absl::Span<const float>(vectors_ + id * config_.dimension,
                                 config_.dimension);
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
  std::vector<uint8_t> bitmap;
  std::unique_ptr<faiss::IDSelectorBitmap> selector;
  if (!options.payload_filter.empty()) {
    bitmap.assign((n + 7) / 8, 0);
    int64_t matches = 0;
    for (int64_t i = 0; i < n; ++i) {
      bool ok = true;
      for (const auto& [field, value] : options.payload_filter) {
        const std::string* have = FindField(payloads_[i], field);
        if (have == nullptr || *have != value) {
          ok = false;
          break;
        }
      }
      if (ok) {
        bitmap[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
        ++matches;
      }
    }
    if (matches == 0) return results;
    selector = std::make_unique<faiss::IDSelectorBitmap>(n, bitmap.data());
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
