#include "model/hidden_state_cache.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace recsys {
namespace {

constexpr char kContentFingerprints[] = "content_fingerprints";

absl::Status Invalid(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": not a valid hidden-state cache: ", what));
}

}  // namespace

uint64_t ItemContentFingerprint(absl::string_view content) {
  // Two CRC-32Cs with different seeds over the bytes and their length.
  const std::string length = absl::StrCat(content.size());
  const uint32_t a = Crc32c(length, Crc32c(content, 0x9E3779B9u));
  const uint32_t b = Crc32c(content, Crc32c(length, 0x7F4A7C15u) ^ 0x85EBCA6Bu);
  return (static_cast<uint64_t>(a) << 32) | b;
}

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
    } else if (k == "backbone_fingerprint") {
      cache->info_.backbone_fingerprint = v;
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
  const int64_t n = states.shape[0];
  absl::StatusOr<std::vector<std::string>> keys = ReadKeyTensors(*file, n);
  if (!keys.ok()) return Invalid(path, keys.status().message());
  cache->keys_ = std::move(*keys);
  cache->row_of_.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) cache->row_of_.emplace(cache->keys_[i], i);
  cache->num_items_ = n;
  cache->num_states_ = states.shape[1];
  cache->hidden_size_ = states.shape[2];
  if (file->Contains(kContentFingerprints)) {
    ASSIGN_OR_RETURN(TensorView fp, file->Get(kContentFingerprints));
    if (fp.dtype != DType::kI64 || fp.shape != std::vector<int64_t>{n}) {
      return Invalid(path, absl::StrCat(kContentFingerprints, " must be I64 [", n, "]"));
    }
    cache->content_fingerprints_.resize(static_cast<size_t>(n));
    std::memcpy(cache->content_fingerprints_.data(), fp.data, static_cast<size_t>(n) * 8);
  }
  cache->states_ = states;
  cache->file_ = std::move(file);
  return cache;
}

int64_t HiddenStateCache::RowOf(const std::string& key) const {
  auto it = row_of_.find(key);
  return it == row_of_.end() ? -1 : it->second;
}

std::optional<uint64_t> HiddenStateCache::ContentFingerprint(int64_t row) const {
  if (content_fingerprints_.empty() || row < 0 || row >= num_items_) return std::nullopt;
  return content_fingerprints_[static_cast<size_t>(row)];
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
                                   const HiddenStateCacheInfo& info,
                                   const std::vector<uint64_t>& content_fingerprints) {
  const int64_t per_row = num_states * hidden_size;
  return WriteHiddenStateCache(
      path, keys,
      [states, per_row](int64_t row, float* out) {
        std::memcpy(out, states + row * per_row, static_cast<size_t>(per_row) * sizeof(float));
        return absl::OkStatus();
      },
      num_states, hidden_size, dtype, info, content_fingerprints);
}

absl::Status WriteHiddenStateCache(const std::string& path,
                                   const std::vector<std::string>& keys,
                                   const HiddenStateRowSource& row, int64_t num_states,
                                   int64_t hidden_size, DType dtype,
                                   const HiddenStateCacheInfo& info,
                                   const std::vector<uint64_t>& content_fingerprints) {
  if (dtype != DType::kF32 && dtype != DType::kF16) {
    return absl::InvalidArgumentError("cache dtype must be F16 or F32");
  }
  if (num_states <= 0 || hidden_size <= 0) {
    return absl::InvalidArgumentError("num_states and hidden_size must be > 0");
  }
  const int64_t n = static_cast<int64_t>(keys.size());
  if (!content_fingerprints.empty() && content_fingerprints.size() != keys.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "content fingerprints: ", content_fingerprints.size(), " for ", n, " keys"));
  }
  const int64_t per_row = num_states * hidden_size;
  // Rows are converted a batch at a time as the file is written.
  constexpr int64_t kRowsPerPiece = 64;
  std::vector<float> rows;
  int64_t next = 0;
  auto source = [&](std::string* piece) -> absl::Status {
    const int64_t count = std::min(kRowsPerPiece, n - next);
    rows.resize(static_cast<size_t>(count * per_row));
    for (int64_t r = 0; r < count; ++r) {
      RETURN_IF_ERROR(row(next + r, rows.data() + r * per_row));
    }
    next += count;
    if (dtype == DType::kF32) {
      piece->assign(reinterpret_cast<const char*>(rows.data()), rows.size() * 4);
    } else {
      piece->resize(rows.size() * 2);
      for (size_t i = 0; i < rows.size(); ++i) {
        const uint16_t h = FloatToHalf(rows[i]);
        std::memcpy(&(*piece)[i * 2], &h, 2);
      }
    }
    return absl::OkStatus();
  };
  SafetensorsWriter writer;
  RETURN_IF_ERROR(writer.AddTensor("hidden_states", dtype, {n, num_states, hidden_size},
                                   SafetensorsWriter::ByteSource(source)));
  absl::Status keys_ok = AddKeyTensors(keys, &writer);
  if (!keys_ok.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("item keys: ", keys_ok.message()));
  }
  if (!content_fingerprints.empty()) {
    RETURN_IF_ERROR(writer.AddTensor(
        kContentFingerprints, DType::kI64, {n},
        absl::string_view(reinterpret_cast<const char*>(content_fingerprints.data()),
                          content_fingerprints.size() * 8)));
  }
  for (const auto& [k, v] : info.extra) writer.SetMetadata(k, v);
  writer.SetMetadata("format", kHiddenStateCacheFormat);
  writer.SetMetadata("modality", info.modality);
  writer.SetMetadata("backbone", info.backbone);
  writer.SetMetadata("backbone_config", info.backbone_config);
  writer.SetMetadata("fingerprint", info.fingerprint);
  if (!info.backbone_fingerprint.empty()) {
    writer.SetMetadata("backbone_fingerprint", info.backbone_fingerprint);
  }
  writer.SetMetadata("standin", info.standin ? "true" : "false");
  return writer.WriteFile(path);
}

}  // namespace recsys
