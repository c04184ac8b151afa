#include "retrieval/collection_config.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "faiss/AutoTune.h"
#include "faiss/Index.h"
#include "faiss/index_factory.h"
#include "faiss/impl/FaissException.h"
#include "common/user_input.h"
#include "retrieval/index_spec.h"

namespace recsys {
namespace retrieval {

absl::string_view MetricName(Metric metric) {
  switch (metric) {
    case Metric::kInnerProduct:
      return "inner_product";
    case Metric::kL2:
      return "l2";
    case Metric::kCosine:
      return "cosine";
  }
  return "unknown";
}

namespace {

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  if (name[0] == '.') return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
          c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::Status ValidateConfig(const CollectionConfig& config) {
  if (!ValidName(config.name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.name: expected 1..128 characters of [A-Za-z0-9_.-] not "
        "starting with '.', got ",
        QuoteUserInput(config.name)));
  }
  if (config.dimension < 1 || config.dimension > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.dimension: expected 1..65536, got ",
                     config.dimension));
  }
  if (config.max_training_vectors < 0) {
    return absl::InvalidArgumentError(
        "config.max_training_vectors: expected >= 0");
  }
  if (config.index_factory.find("IDMap") != std::string::npos) {
    return absl::InvalidArgumentError(
        "config.index_factory: IDMap is managed by the collection; leave it "
        "out");
  }
  // The supported grammar with bounded parameters first: FAISS's own
  // factory accepts strings that crash it later (see index_spec.h).
  absl::StatusOr<IndexSpec> spec =
      ParseIndexSpec(config.index_factory, config.dimension);
  if (!spec.ok()) return spec.status();
  try {
    std::unique_ptr<faiss::Index> probe(faiss::index_factory(
        config.dimension, config.index_factory.c_str(),
        config.metric == Metric::kL2 ? faiss::METRIC_L2
                                     : faiss::METRIC_INNER_PRODUCT));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.index_factory: FAISS rejects ",
        QuoteUserInput(config.index_factory), " for dimension ",
        config.dimension, ": ", e.what()));
  }
  if (config.build_params.size() > 16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.build_params: expected at most 16 entries, got ",
        config.build_params.size()));
  }
  for (const auto& [k, v] : config.build_params) {
    if (k == "hnsw_walk") {
      if (v != "int8" && v != "fp16" && v != "fp32") {
        return absl::InvalidArgumentError(absl::StrCat(
            "config.build_params[hnsw_walk]: expected int8, fp16 or fp32, "
            "got ", QuoteUserInput(v)));
      }
      continue;
    }
    if (k != "efConstruction" && k != "efSearch") {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.build_params: unknown key ", QuoteUserInput(k),
          "; expected one of: efConstruction, efSearch, hnsw_walk"));
    }
    int ef = 0;
    if (!absl::SimpleAtoi(v, &ef) || ef < 1 || ef > 4096) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.build_params[", k, "]: expected 1..4096, got ",
          QuoteUserInput(v)));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateVector(const CollectionConfig& config,
                            absl::string_view field, std::vector<float>& v) {
  if (static_cast<int>(v.size()) != config.dimension) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": expected dimension ", config.dimension,
                     " (collection ", QuoteUserInput(config.name), "), got ",
                     v.size()));
  }
  // In double: a float sum of squares overflows for |x| > 1.8e19 and a
  // denormal norm's float reciprocal is infinite.
  double norm2 = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: expected a finite value, got ",
                       v[i]));
    }
    norm2 += static_cast<double>(v[i]) * v[i];
  }
  if (config.metric == Metric::kCosine) {
    // Normalised in double, so any non-zero finite vector (denormal
    // components included) becomes a finite unit vector.
    if (!(norm2 > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": expected a non-zero vector (cosine collection ",
          QuoteUserInput(config.name), ")"));
    }
    const double norm = std::sqrt(norm2);
    double check = 0;
    for (float& x : v) {
      x = static_cast<float>(static_cast<double>(x) / norm);
      check += static_cast<double>(x) * x;
    }
    if (!(std::abs(check - 1.0) < 1e-3)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": cannot be normalised to a unit vector (squared norm ",
          norm2, "; cosine collection ", QuoteUserInput(config.name), ")"));
    }
    return absl::OkStatus();
  }
  // Scores of IP and L2 are computed in float: |a.b| <= |a||b| and
  // |a-b|^2 <= 2|a|^2 + 2|b|^2 stay finite when every squared norm does.
  if (norm2 > kMaxSquaredNorm) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": squared norm ", norm2, " exceeds ", kMaxSquaredNorm,
        " (scores of ", MetricName(config.metric),
        " would overflow float); scale the vectors down"));
  }
  return absl::OkStatus();
}

absl::Status CheckStoredVectors(const CollectionConfig& config,
                                absl::Span<const float> vectors,
                                absl::string_view what) {
  const size_t d = static_cast<size_t>(config.dimension);
  for (size_t i = 0; i < vectors.size(); ++i) {
    if (!std::isfinite(vectors[i])) {
      return absl::DataLossError(absl::StrCat(
          what, ": row ", i / d, " holds a non-finite value at [", i % d,
          "]: refusing to build or serve it"));
    }
  }
  return absl::OkStatus();
}

void NormalizePayload(Payload& payload) {
  std::stable_sort(payload.begin(), payload.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  Payload out;
  out.reserve(payload.size());
  for (auto& kv : payload) {
    if (!out.empty() && out.back().first == kv.first) {
      out.back().second = std::move(kv.second);
    } else {
      out.push_back(std::move(kv));
    }
  }
  payload = std::move(out);
}

const std::string* FindField(const Payload& payload, absl::string_view field) {
  auto it = std::lower_bound(
      payload.begin(), payload.end(), field,
      [](const auto& kv, absl::string_view f) { return kv.first < f; });
  if (it == payload.end() || it->first != field) return nullptr;
  return &it->second;
}

absl::Status ValidateKeys(const EntryLimits& limits, absl::string_view field,
                          absl::Span<const std::string> keys) {
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].empty() || keys[i].size() > limits.max_key_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: expected a key of 1..",
                       limits.max_key_bytes, " bytes, got ", keys[i].size()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateBatch(const CollectionConfig& config,
                           const EntryLimits& limits,
                           std::vector<Entry>& batch) {
  if (batch.size() > limits.max_batch_entries) {
    return absl::InvalidArgumentError(
        absl::StrCat("entries: expected at most ", limits.max_batch_entries,
                     " per message, got ", batch.size()));
  }
  absl::flat_hash_set<absl::string_view> seen;
  seen.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    Entry& e = batch[i];
    const std::string where = absl::StrCat("entries[", i, "]");
    if (e.key.empty() || e.key.size() > limits.max_key_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".key: expected 1..", limits.max_key_bytes,
                       " bytes, got ", e.key.size()));
    }
    if (!seen.insert(e.key).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".key: duplicate key ", QuoteUserInput(e.key),
          " in one batch"));
    }
    absl::Status s = ValidateVector(config, where + ".vector", e.vector);
    if (!s.ok()) return s;
    size_t bytes = 0;
    for (const auto& kv : e.payload) bytes += kv.first.size() + kv.second.size();
    if (bytes > limits.max_payload_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".payload: expected at most ",
                       limits.max_payload_bytes, " bytes, got ", bytes));
    }
    NormalizePayload(e.payload);
  }
  return absl::OkStatus();
}

}  // namespace retrieval
}  // namespace recsys
