#include "trainer/cache/hidden_state_cache.h"

#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace recsys {
namespace {


absl::Status Invalid(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": not a valid hidden-state cache: ", what));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HiddenStateCache>> HiddenStateCache::Open(
    const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                   SafetensorsFile::Open(path));
  const auto& meta = file->metadata();
  auto format = meta.find("format");
  if (format == meta.end() || format->second != kHiddenStateCacheFormat) {
    return Invalid(path, absl::StrCat("metadata \"format\" must be \"",
                                      kHiddenStateCacheFormat, "\""));
  }
  std::unique_ptr<HiddenStateCache> cache(new HiddenStateCache());
  for (const auto& [k, v] : meta) {
    if (k == "format") continue;
    if (k == "modality") {
      cache->info_.modality = v;
    } else if (k == "backbone") {
      cache->info_.backbone = v;
    } else if (k == "backbone_config") {
      cache->info_.backbone_config = v;
    } else if (k == "fingerprint") {
      cache->info_.fingerprint = v;
    } else if (k == "standin") {
      cache->info_.standin = v == "true";
    } else {
      cache->info_.extra[k] = v;
    }
  }

  ASSIGN_OR_RETURN(TensorView states, file->Get("hidden_states"));
  if (states.shape.size() != 3) {
    return Invalid(path, "hidden_states must be [items, states, hidden]");
  }
  if (states.dtype != DType::kF32 && states.dtype != DType::kF16) {
    return Invalid(path, "hidden_states must be F16 or F32");
  }
  ASSIGN_OR_RETURN(TensorView key_bytes, file->Get("key_bytes"));
  ASSIGN_OR_RETURN(TensorView key_offsets, file->Get("key_offsets"));
  if (key_bytes.dtype != DType::kU8 || key_bytes.shape.size() != 1) {
    return Invalid(path, "key_bytes must be U8 [n]");
  }
  const int64_t n = states.shape[0];
  if (key_offsets.dtype != DType::kI64 || key_offsets.shape.size() != 1 ||
      key_offsets.shape[0] != n + 1) {
    return Invalid(path, absl::StrCat("key_offsets must be I64 [", n + 1, "]"));
  }
  cache->keys_.reserve(static_cast<size_t>(n));
  cache->row_of_.reserve(static_cast<size_t>(n));
  int64_t prev = 0;
  for (int64_t i = 0; i <= n; ++i) {
    int64_t off;
    std::memcpy(&off, key_offsets.data + i * 8, 8);
    if ((i == 0 && off != 0) || off < prev ||
        off > static_cast<int64_t>(key_bytes.size_bytes)) {
      return Invalid(path, absl::StrCat("key_offsets[", i, "] out of order"));
    }
    if (i > 0) {
      if (off == prev) return Invalid(path, absl::StrCat("key ", i - 1, " is empty"));
      std::string key(reinterpret_cast<const char*>(key_bytes.data) + prev,
                      static_cast<size_t>(off - prev));
      if (!cache->row_of_.emplace(key, i - 1).second) {
        return Invalid(path, absl::StrCat("duplicate key \"", key, "\""));
      }
      cache->keys_.push_back(std::move(key));
    }
    prev = off;
  }
  cache->num_items_ = n;
  cache->num_states_ = states.shape[1];
  cache->hidden_size_ = states.shape[2];
  cache->states_ = states;
  cache->file_ = std::move(file);
  return cache;
}

int64_t HiddenStateCache::RowOf(const std::string& key) const {
  auto it = row_of_.find(key);
  return it == row_of_.end() ? -1 : it->second;
}

absl::Status HiddenStateCache::Gather(const std::vector<int64_t>& rows,
                                      float* out) const {
  const int64_t per_row = num_states_ * hidden_size_;
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t r = rows[i];
    if (r < 0 || r >= num_items_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row ", r, " is outside the cache of ", num_items_, " items"));
    }
    RETURN_IF_ERROR(ReadAsFloat(states_, r * per_row, per_row,
                                out + static_cast<int64_t>(i) * per_row));
  }
  return absl::OkStatus();
}

absl::Status WriteHiddenStateCache(const std::string& path,
                                   const std::vector<std::string>& keys,
                                   const float* states, int64_t num_states,
                                   int64_t hidden_size, DType dtype,
                                   const HiddenStateCacheInfo& info) {
  if (dtype != DType::kF32 && dtype != DType::kF16) {
    return absl::InvalidArgumentError("cache dtype must be F16 or F32");
  }
  if (num_states <= 0 || hidden_size <= 0) {
    return absl::InvalidArgumentError("num_states and hidden_size must be > 0");
  }
  const int64_t n = static_cast<int64_t>(keys.size());
  std::string key_bytes;
  std::vector<int64_t> offsets{0};
  absl::flat_hash_set<std::string> seen;
  for (const std::string& k : keys) {
    if (k.empty()) return absl::InvalidArgumentError("empty item key");
    if (!seen.insert(k).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate item key \"", k, "\""));
    }
    key_bytes += k;
    offsets.push_back(static_cast<int64_t>(key_bytes.size()));
  }
  const size_t count = static_cast<size_t>(n * num_states * hidden_size);
  std::string state_bytes;
  if (dtype == DType::kF32) {
    state_bytes.assign(reinterpret_cast<const char*>(states), count * 4);
  } else {
    state_bytes.resize(count * 2);
    for (size_t i = 0; i < count; ++i) {
      const uint16_t h = FloatToHalf(states[i]);
      std::memcpy(&state_bytes[i * 2], &h, 2);
    }
  }
  SafetensorsWriter writer;
  RETURN_IF_ERROR(writer.AddTensor("hidden_states", dtype,
                                   {n, num_states, hidden_size}, state_bytes));
  RETURN_IF_ERROR(writer.AddTensor(
      "key_bytes", DType::kU8, {static_cast<int64_t>(key_bytes.size())},
      key_bytes));
  RETURN_IF_ERROR(writer.AddTensor(
      "key_offsets", DType::kI64, {n + 1},
      absl::string_view(reinterpret_cast<const char*>(offsets.data()),
                        offsets.size() * 8)));
  for (const auto& [k, v] : info.extra) writer.SetMetadata(k, v);
  writer.SetMetadata("format", kHiddenStateCacheFormat);
  writer.SetMetadata("modality", info.modality);
  writer.SetMetadata("backbone", info.backbone);
  writer.SetMetadata("backbone_config", info.backbone_config);
  writer.SetMetadata("fingerprint", info.fingerprint);
  writer.SetMetadata("standin", info.standin ? "true" : "false");
  return writer.WriteFile(path);
}

}  // namespace recsys
