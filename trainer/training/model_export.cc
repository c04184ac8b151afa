#include "trainer/training/model_export.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace recsys {
namespace {

absl::Status WriteItemEmbeddings(const std::string& path, const ModelVersion& v) {
  const int64_t n = static_cast<int64_t>(v.item_keys.size());
  SafetensorsWriter w;
  RETURN_IF_ERROR(w.AddTensor(
      "embeddings", DType::kF32, {n, v.embedding_dim},
      absl::string_view(reinterpret_cast<const char*>(v.item_embeddings.data()),
                        v.item_embeddings.size() * sizeof(float))));
  RETURN_IF_ERROR(AddKeyTensors(v.item_keys, &w));
  w.SetMetadata("format", "recsys.item_embeddings.v1");
  w.SetMetadata("version", v.version);
  return w.WriteFile(path);
}

}  // namespace

absl::StatusOr<int64_t> NextModelVersion(const std::string& base_dir) {
  if (!PathExists(base_dir)) return 1;
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(base_dir));
  int64_t newest = 0;
  for (const std::string& name : names) {
    int64_t v;
    if (absl::SimpleAtoi(name, &v) && absl::StrCat(v) == name) {
      newest = std::max(newest, v);
    }
  }
  return newest + 1;
}

absl::StatusOr<std::string> ExportModelVersion(const std::string& base_dir,
                                               const ModelVersion& v) {
  if (v.version.empty() || absl::StrContains(v.version, '/') || v.version[0] == '.') {
    return absl::InvalidArgumentError(absl::StrCat("version \"", v.version,
                                                   "\" is not a plain directory name"));
  }
  if (v.embedding_dim <= 0 ||
      v.item_embeddings.size() != v.item_keys.size() * static_cast<size_t>(v.embedding_dim)) {
    return absl::InvalidArgumentError("item_embeddings must be [item_keys, embedding_dim]");
  }
  // Garbage is never published: a NaN embedding would rank first or last for
  // every query in the sidecar.
  for (size_t i = 0; i < v.item_embeddings.size(); ++i) {
    if (!std::isfinite(v.item_embeddings[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "item_embeddings: item \"", v.item_keys[i / v.embedding_dim], "\" dim ",
          i % v.embedding_dim, " is not finite (expected finite values)"));
    }
  }
  for (const NamedTensor& t : v.weights) {
    for (float x : t.values) {
      if (!std::isfinite(x)) {
        return absl::InvalidArgumentError(
            absl::StrCat("weights: ", t.name, " has non-finite values (expected finite values)"));
      }
    }
  }
  for (const auto* field : {&v.config_json, &v.metrics_json}) {
    if (!field->empty() && !nlohmann::json::accept(*field)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field == &v.config_json ? "config_json" : "metrics_json", " is not valid JSON"));
    }
  }
  const std::string final_dir = JoinPath(base_dir, v.version);
  if (PathExists(final_dir)) {
    return absl::AlreadyExistsError(absl::StrCat(final_dir, " exists"));
  }
  RETURN_IF_ERROR(CreateDirectories(base_dir));
  const std::string tmp = JoinPath(base_dir, absl::StrCat(".tmp-", v.version, "-", getpid()));
  RETURN_IF_ERROR(RemoveRecursively(tmp));
  RETURN_IF_ERROR(CreateDirectories(tmp));

  RETURN_IF_ERROR(WriteCheckpoint(JoinPath(tmp, "model.safetensors"),
                                  {v.weights, v.config_json}));
  Checkpoint user;
  user.config_json = v.config_json;
  for (const NamedTensor& t : v.weights) {
    if (absl::StartsWith(t.name, "user_encoder.")) user.tensors.push_back(t);
  }
  RETURN_IF_ERROR(WriteCheckpoint(JoinPath(tmp, "user_encoder.safetensors"), user));
  std::string keys;
  for (const auto& k : v.item_keys) absl::StrAppend(&keys, k, "\n");
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(tmp, "item_keys.txt"), keys));
  RETURN_IF_ERROR(WriteItemEmbeddings(JoinPath(tmp, "item_embeddings.safetensors"), v));

  nlohmann::json files = nlohmann::json::object();
  for (const char* name : {"model.safetensors", "user_encoder.safetensors",
                           "item_keys.txt", "item_embeddings.safetensors"}) {
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(JoinPath(tmp, name)));
    files[name] = {{"bytes", bytes.size()}, {"crc32c", Crc32c(bytes)}};
  }
  nlohmann::json m;
  m["format"] = kModelVersionFormat;
  m["version"] = v.version;
  m["created_at"] = absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());
  m["model"] = v.model;
  m["config"] = nlohmann::json::parse(v.config_json.empty() ? "{}" : v.config_json,
                                      nullptr, /*allow_exceptions=*/false);
  m["data_fingerprint"] = v.data_fingerprint;
  m["metrics"] = nlohmann::json::parse(v.metrics_json.empty() ? "{}" : v.metrics_json,
                                       nullptr, false);
  m["dims"] = {{"embedding", v.embedding_dim}, {"max_len", v.max_len}};
  m["item_count"] = v.item_keys.size();
  m["files"] = files;
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(tmp, "manifest.json"), m.dump(2) + "\n"));
  RETURN_IF_ERROR(SyncPath(tmp));
  RETURN_IF_ERROR(DurableRename(tmp, final_dir));
  return final_dir;
}

}  // namespace recsys
