#include "model/model_version.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace recsys {
namespace {

using json = nlohmann::json;

constexpr char kItemEmbeddingsFormat[] = "recsys.item_embeddings.v1";
constexpr char kLegacyStandardizationPrefix[] = "state_standardization.";

absl::Status ManifestError(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("manifest.json: ", what));
}

// Old manifests wrote the version as a string; both forms are read.
absl::StatusOr<int64_t> JsonVersion(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return ManifestError(absl::StrCat(field, " is missing"));
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    absl::StatusOr<int64_t> v = ParseModelVersionName(it->get<std::string>());
    if (v.ok()) return *v;
  }
  return ManifestError(absl::StrCat(field, " is not a version number"));
}

absl::Status WriteItemEmbeddings(const std::string& path, const ItemEmbeddings& items,
                                 int64_t version) {
  const int64_t n = static_cast<int64_t>(items.keys.size());
  SafetensorsWriter w;
  RETURN_IF_ERROR(w.AddTensor(
      "embeddings", DType::kF32, {n, items.dim},
      absl::string_view(reinterpret_cast<const char*>(items.values.data()),
                        items.values.size() * sizeof(float))));
  RETURN_IF_ERROR(AddKeyTensors(items.keys, &w));
  w.SetMetadata("format", kItemEmbeddingsFormat);
  w.SetMetadata("version", ModelVersionName(version));
  return w.WriteFile(path);
}

absl::Status WriteStandardization(const std::string& path,
                                  const std::vector<StateStandardization>& stats) {
  Checkpoint c;
  for (const StateStandardization& s : stats) {
    c.tensors.push_back({s.modality + ".mean", s.shape, s.mean});
    c.tensors.push_back({s.modality + ".inv_std", s.shape, s.inv_std});
  }
  return WriteCheckpoint(path, c);
}

absl::Status ValidateContents(const ModelVersionContents& c) {
  const ModelVersionManifest& m = c.manifest;
  if (m.version <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("version: must be positive, got ", m.version));
  }
  if (m.kind != "train" && m.kind != "refresh") {
    return absl::InvalidArgumentError("kind: expected \"train\" or \"refresh\"");
  }
  RETURN_IF_ERROR(ValidateNetworkConfig(m.network));
  const ItemEmbeddings& items = c.items;
  if (items.keys.empty() || items.dim != m.network.embedding_dim ||
      items.values.size() != items.keys.size() * static_cast<size_t>(items.dim)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "items: embeddings must be [", items.keys.size(), ", ", m.network.embedding_dim,
        "] floats, got ", items.values.size(), " of width ", items.dim));
  }
  bool has_user_encoder = false;
  for (const NamedTensor& t : c.weights) {
    has_user_encoder |= absl::StartsWith(t.name, kUserEncoderPrefix);
  }
  if (!has_user_encoder) {
    return absl::InvalidArgumentError("weights: no user_encoder.* tensor");
  }
  if (!c.item_popularity.empty()) {
    if (c.item_popularity.size() != items.keys.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "item_popularity: must have one count per item (", items.keys.size(), "), got ",
          c.item_popularity.size()));
    }
    for (float x : c.item_popularity) {
      if (!(x >= 0.0f) || !std::isfinite(x)) {
        return absl::InvalidArgumentError("item_popularity: counts must be finite and >= 0");
      }
    }
  }
  for (const StateStandardization& s : c.standardization) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    if (s.mean.size() != static_cast<size_t>(n) || s.inv_std.size() != static_cast<size_t>(n)) {
      return absl::InvalidArgumentError(
          absl::StrCat("standardization of ", s.modality, ": sizes do not match its shape"));
    }
  }
  // Garbage is never published: a NaN embedding ranks first or last for
  // every query in the sidecar.
  for (size_t i = 0; i < items.values.size(); ++i) {
    if (!std::isfinite(items.values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "items: the embedding of \"", items.keys[i / items.dim], "\" dim ", i % items.dim,
          " is not finite (expected finite values)"));
    }
  }
  auto all_finite = [](const std::vector<float>& v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
  };
  for (const NamedTensor& t : c.weights) {
    if (!all_finite(t.values)) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights: ", t.name, " has non-finite values (expected finite values)"));
    }
  }
  for (const StateStandardization& s : c.standardization) {
    if (!all_finite(s.mean) || !all_finite(s.inv_std)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "standardization of ", s.modality, ": non-finite values (expected finite values)"));
    }
  }
  if (!m.metrics_json.empty() && !json::accept(m.metrics_json)) {
    return absl::InvalidArgumentError("manifest.metrics_json: not valid JSON");
  }
  if (!m.config_json.empty() && !json::accept(m.config_json)) {
    return absl::InvalidArgumentError("manifest.config_json: not valid JSON");
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------- manifest

std::string ManifestToJson(const ModelVersionManifest& m) {
  json config = json::parse(m.config_json.empty() ? "{}" : m.config_json, nullptr,
                            /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) config = json::object();
  NetworkConfigToJson(m.network, &config);
  json metrics = json::parse(m.metrics_json.empty() ? "{}" : m.metrics_json, nullptr,
                             /*allow_exceptions=*/false);
  if (metrics.is_discarded()) metrics = json::object();
  json files = json::object();
  for (const auto& [name, sum] : m.files) {
    files[name] = {{"bytes", sum.bytes}, {"crc32c", sum.crc32c}};
  }
  json j;
  j["format"] = kModelVersionFormat;
  j["version"] = ModelVersionName(m.version);
  j["kind"] = m.kind;
  if (m.parent_version > 0) j["parent_version"] = m.parent_version;
  j["created_at"] = m.created_at;
  j["model"] = m.network.model;
  j["config"] = config;
  j["data_fingerprint"] = m.data_fingerprint;
  j["metrics"] = metrics;
  j["dims"] = {{"embedding", m.network.embedding_dim}, {"max_len", m.network.max_len}};
  j["item_count"] = m.item_count;
  j["files"] = files;
  return j.dump(2) + "\n";
}

namespace {

absl::StatusOr<ModelVersionManifest> ParseManifest(absl::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return ManifestError("not a JSON object");
  if (!j.contains("format") || !j["format"].is_string() ||
      j["format"].get<std::string>() != kModelVersionFormat) {
    return ManifestError(absl::StrCat("format is not ", kModelVersionFormat));
  }
  ModelVersionManifest m;
  ASSIGN_OR_RETURN(m.version, JsonVersion(j, "version"));
  if (j.contains("kind")) {
    if (!j["kind"].is_string()) return ManifestError("kind is not a string");
    m.kind = j["kind"].get<std::string>();
    if (m.kind != "train" && m.kind != "refresh") {
      return ManifestError("kind is neither \"train\" nor \"refresh\"");
    }
  }
  if (j.contains("parent_version")) {
    ASSIGN_OR_RETURN(m.parent_version, JsonVersion(j, "parent_version"));
  }
  if (j.contains("created_at") && j["created_at"].is_string()) {
    m.created_at = j["created_at"].get<std::string>();
  }
  if (!j.contains("config") || !j["config"].is_object()) {
    return ManifestError("config is not an object");
  }
  absl::StatusOr<NetworkConfig> network = NetworkConfigFromJson(j["config"]);
  if (!network.ok()) return ManifestError(network.status().message());
  m.network = std::move(*network);
  if (!j.contains("model") || j["model"] != m.network.model) {
    return ManifestError("model does not match config.model");
  }
  // "dims" duplicates two network fields for readers of the raw JSON.
  const json dims = j.value("dims", json::object());
  if (!dims.is_object() || dims.value("embedding", int64_t{-1}) != m.network.embedding_dim ||
      dims.value("max_len", int64_t{-1}) != m.network.max_len) {
    return ManifestError("dims disagree with config.embedding_dim / config.max_len");
  }
  m.config_json = j["config"].dump();
  if (j.contains("data_fingerprint") && j["data_fingerprint"].is_string()) {
    m.data_fingerprint = j["data_fingerprint"].get<std::string>();
  }
  m.metrics_json = j.contains("metrics") ? j["metrics"].dump() : "{}";
  if (!j.contains("item_count") || !j["item_count"].is_number_unsigned()) {
    return ManifestError("item_count is not a count");
  }
  m.item_count = j["item_count"].get<int64_t>();
  if (!j.contains("files") || !j["files"].is_object()) return ManifestError("lists no files");
  for (auto it = j["files"].begin(); it != j["files"].end(); ++it) {
    const json& f = it.value();
    if (it.key().empty() || absl::StrContains(it.key(), '/') || it.key()[0] == '.' ||
        !f.is_object() || !f.contains("bytes") || !f.contains("crc32c") ||
        !f["bytes"].is_number_unsigned() || !f["crc32c"].is_number_unsigned()) {
      return ManifestError(absl::StrCat("bad entry for file \"", it.key().substr(0, 64), "\""));
    }
    FileChecksum sum;
    sum.bytes = f["bytes"].get<uint64_t>();
    sum.crc32c = f["crc32c"].get<uint32_t>();
    m.files[it.key()] = sum;
  }
  for (const char* required :
       {kModelWeightsFile, kUserEncoderFile, kItemKeysFile, kItemEmbeddingsFile}) {
    if (!m.files.count(required)) {
      return ManifestError(absl::StrCat("does not list ", required));
    }
  }
  return m;
}

}  // namespace

absl::StatusOr<ModelVersionManifest> ManifestFromJson(absl::string_view text) {
  try {
    return ParseManifest(text);
  } catch (const json::exception& e) {  // a field of an unexpected type
    return ManifestError(e.what());
  }
}

// ------------------------------------------------------------------ naming

std::string ModelVersionName(int64_t version) { return absl::StrCat(version); }

absl::StatusOr<int64_t> ParseModelVersionName(absl::string_view name) {
  int64_t v = 0;
  if (name.empty() || name.size() > 18 || name[0] == '0' ||
      !std::all_of(name.begin(), name.end(), [](char c) { return absl::ascii_isdigit(c); }) ||
      !absl::SimpleAtoi(name, &v) || v <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", name.substr(0, 64), "\" is not a model version (a positive decimal "
        "number without leading zeros)"));
  }
  return v;
}

absl::StatusOr<int64_t> ModelVersionOfDirectory(absl::string_view dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.remove_suffix(1);
  const size_t slash = dir.find_last_of('/');
  const absl::string_view name = slash == absl::string_view::npos ? dir : dir.substr(slash + 1);
  absl::StatusOr<int64_t> v = ParseModelVersionName(name);
  if (!v.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model version directory \"", dir.substr(0, 200), "\": ", v.status().message()));
  }
  return *v;
}

std::string ModelVersionPath(const std::string& models_dir, int64_t version) {
  return JoinPath(models_dir, ModelVersionName(version));
}

absl::StatusOr<std::vector<int64_t>> ListModelVersions(const std::string& models_dir) {
  std::vector<int64_t> versions;
  if (!PathExists(models_dir)) return versions;
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(models_dir));
  for (const std::string& name : names) {
    absl::StatusOr<int64_t> v = ParseModelVersionName(name);
    if (v.ok()) versions.push_back(*v);
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

absl::StatusOr<int64_t> NextModelVersion(const std::string& models_dir) {
  ASSIGN_OR_RETURN(std::vector<int64_t> versions, ListModelVersions(models_dir));
  return versions.empty() ? 1 : versions.back() + 1;
}

// ------------------------------------------------------------------ writer

absl::StatusOr<std::string> WriteModelVersion(const std::string& models_dir,
                                              const ModelVersionContents& c) {
  RETURN_IF_ERROR(ValidateContents(c));
  const int64_t version = c.manifest.version;
  const std::string final_dir = ModelVersionPath(models_dir, version);
  if (PathExists(final_dir)) {
    return absl::AlreadyExistsError(absl::StrCat("model version ", final_dir, " exists"));
  }
  RETURN_IF_ERROR(CreateDirectories(models_dir));
  const std::string tmp =
      JoinPath(models_dir, absl::StrCat(".tmp-", version, "-", getpid()));
  RETURN_IF_ERROR(RemoveRecursively(tmp));
  RETURN_IF_ERROR(CreateDirectories(tmp));

  RETURN_IF_ERROR(WriteCheckpoint(JoinPath(tmp, kModelWeightsFile),
                                  {c.weights, c.manifest.config_json}));
  if (!c.user_encoder_source.empty()) {
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(c.user_encoder_source));
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(tmp, kUserEncoderFile), bytes));
  } else {
    Checkpoint user;
    user.config_json = c.manifest.config_json;
    for (const NamedTensor& t : c.weights) {
      if (absl::StartsWith(t.name, kUserEncoderPrefix)) user.tensors.push_back(t);
    }
    RETURN_IF_ERROR(WriteCheckpoint(JoinPath(tmp, kUserEncoderFile), user));
  }
  std::string keys;
  for (const std::string& k : c.items.keys) absl::StrAppend(&keys, k, "\n");
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(tmp, kItemKeysFile), keys));
  RETURN_IF_ERROR(
      WriteItemEmbeddings(JoinPath(tmp, kItemEmbeddingsFile), c.items, version));
  std::vector<const char*> names = {kModelWeightsFile, kUserEncoderFile, kItemKeysFile,
                                    kItemEmbeddingsFile};
  if (!c.standardization.empty()) {
    RETURN_IF_ERROR(
        WriteStandardization(JoinPath(tmp, kStandardizationFile), c.standardization));
    names.push_back(kStandardizationFile);
  }
  if (!c.item_popularity.empty()) {
    Checkpoint popularity;
    popularity.tensors.push_back(
        {"counts", {static_cast<int64_t>(c.item_popularity.size())}, c.item_popularity});
    RETURN_IF_ERROR(WriteCheckpoint(JoinPath(tmp, kItemPopularityFile), popularity));
    names.push_back(kItemPopularityFile);
  }

  ModelVersionManifest m = c.manifest;
  m.created_at = absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());
  m.item_count = static_cast<int64_t>(c.items.keys.size());
  m.files.clear();
  for (const char* name : names) {
    ASSIGN_OR_RETURN(m.files[name], Crc32cOfFile(JoinPath(tmp, name)));
  }
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(tmp, kManifestFile), ManifestToJson(m)));
  RETURN_IF_ERROR(SyncPath(tmp));
  RETURN_IF_ERROR(DurableRename(tmp, final_dir));
  return final_dir;
}

// ------------------------------------------------------------------ reader

absl::Status ModelVersion::Damaged(absl::string_view what) const {
  return absl::DataLossError(absl::StrCat("model version ", dir_, " is damaged: ", what));
}

absl::StatusOr<std::unique_ptr<ModelVersion>> ModelVersion::Open(const std::string& dir) {
  ASSIGN_OR_RETURN(const int64_t named, ModelVersionOfDirectory(dir));
  auto damaged = [&dir](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("model version ", dir, " is damaged: ", what));
  };
  absl::StatusOr<std::string> text = ReadFileToString(JoinPath(dir, kManifestFile));
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return absl::NotFoundError(absl::StrCat("model version ", dir, " has no manifest.json"));
    }
    return text.status();
  }
  absl::StatusOr<ModelVersionManifest> manifest = ManifestFromJson(*text);
  if (!manifest.ok()) return damaged(manifest.status().message());
  if (manifest->version != named) {
    return damaged(absl::StrCat("its manifest says version ", manifest->version));
  }
  for (const auto& [name, want] : manifest->files) {
    absl::StatusOr<FileChecksum> sum = Crc32cOfFile(JoinPath(dir, name));
    if (!sum.ok()) return damaged(absl::StrCat(name, ": ", sum.status().message()));
    if (sum->bytes != want.bytes) {
      return damaged(absl::StrCat(name, " has ", sum->bytes, " bytes, manifest says ",
                                  want.bytes));
    }
    if (sum->crc32c != want.crc32c) {
      return damaged(absl::StrCat(name, " fails its CRC-32C check"));
    }
  }
  return std::unique_ptr<ModelVersion>(new ModelVersion(dir, std::move(*manifest)));
}

absl::StatusOr<ItemEmbeddings> ModelVersion::ReadItemEmbeddings() const {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(JoinPath(dir_, kItemEmbeddingsFile));
  if (!file.ok()) return Damaged(file.status().message());
  absl::StatusOr<TensorView> emb = (*file)->Get("embeddings");
  const int64_t d = manifest_.network.embedding_dim;
  if (!emb.ok() || emb->dtype != DType::kF32 || emb->shape.size() != 2 ||
      emb->shape[0] != manifest_.item_count || emb->shape[1] != d) {
    return Damaged(absl::StrCat("embeddings must be F32 [", manifest_.item_count, ", ", d,
                                "] as the manifest says"));
  }
  ItemEmbeddings out;
  out.dim = d;
  absl::StatusOr<std::vector<std::string>> keys = ReadKeyTensors(**file, emb->shape[0]);
  if (!keys.ok()) return Damaged(absl::StrCat("item keys: ", keys.status().message()));
  out.keys = std::move(*keys);
  // item_keys.txt is the human-readable copy; it must say the same.
  ASSIGN_OR_RETURN(std::string listed, ReadFileToString(JoinPath(dir_, kItemKeysFile)));
  std::vector<absl::string_view> lines = absl::StrSplit(listed, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.size() != out.keys.size() ||
      !std::equal(lines.begin(), lines.end(), out.keys.begin())) {
    return Damaged("item_keys.txt disagrees with the embeddings' keys");
  }
  out.values.resize(static_cast<size_t>(emb->num_elements()));
  RETURN_IF_ERROR(ReadAsFloat(*emb, 0, emb->num_elements(), out.values.data()));
  return out;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> ModelVersion::OpenUserEncoderWeights()
    const {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(JoinPath(dir_, kUserEncoderFile));
  if (!file.ok()) return Damaged(file.status().message());
  return file;
}

absl::StatusOr<Checkpoint> ModelVersion::ReadWeights() const {
  absl::StatusOr<Checkpoint> c = ReadCheckpoint(JoinPath(dir_, kModelWeightsFile));
  if (!c.ok()) return Damaged(c.status().message());
  return c;
}

absl::StatusOr<std::vector<StateStandardization>> ModelVersion::ReadStandardization()
    const {
  std::vector<StateStandardization> out;
  if (!manifest_.network.standardize_states) return out;
  Checkpoint c;
  std::string prefix;
  if (manifest_.files.count(kStandardizationFile)) {
    absl::StatusOr<Checkpoint> read = ReadCheckpoint(JoinPath(dir_, kStandardizationFile));
    if (!read.ok()) return Damaged(read.status().message());
    c = std::move(*read);
  } else {
    ASSIGN_OR_RETURN(c, ReadWeights());
    prefix = kLegacyStandardizationPrefix;
  }
  auto find = [&c](const std::string& name) -> const NamedTensor* {
    for (const NamedTensor& t : c.tensors) {
      if (t.name == name) return &t;
    }
    return nullptr;
  };
  for (const ModalityConfig& m : manifest_.network.modalities) {
    const NamedTensor* mean = find(absl::StrCat(prefix, m.modality, ".mean"));
    const NamedTensor* inv_std = find(absl::StrCat(prefix, m.modality, ".inv_std"));
    const std::vector<int64_t> shape = {static_cast<int64_t>(m.states.size()), m.hidden_size};
    if (mean == nullptr || inv_std == nullptr || mean->shape != shape ||
        inv_std->shape != shape) {
      return Damaged(absl::StrCat("no standardisation statistics [", shape[0], ", ",
                                  shape[1], "] for modality ", m.modality));
    }
    out.push_back({m.modality, shape, mean->values, inv_std->values});
  }
  return out;
}

absl::StatusOr<std::vector<float>> ModelVersion::ReadItemPopularity() const {
  if (!manifest_.files.count(kItemPopularityFile)) return std::vector<float>();
  absl::StatusOr<Checkpoint> c = ReadCheckpoint(JoinPath(dir_, kItemPopularityFile));
  if (!c.ok()) return Damaged(c.status().message());
  for (NamedTensor& t : c->tensors) {
    if (t.name != "counts") continue;
    if (t.shape != std::vector<int64_t>{manifest_.item_count}) break;
    for (float x : t.values) {
      if (!(x >= 0.0f) || !std::isfinite(x)) {
        return Damaged(absl::StrCat(kItemPopularityFile, ": a count is negative or not finite"));
      }
    }
    return std::move(t.values);
  }
  return Damaged(absl::StrCat(kItemPopularityFile, ": no \"counts\" F32 [",
                              manifest_.item_count, "]"));
}

}  // namespace recsys
