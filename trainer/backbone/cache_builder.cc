#include "trainer/backbone/cache_builder.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/progress.h"
#include "common/status_macros.h"
#include "model/encoders/html_unescape.h"
#include "model/encoders/unicode_text.h"
#include "model/hidden_state_cache.h"

namespace recsys {
namespace {

// Items of the chunk done so far; a non-OK status stops the encoding.
using ChunkProgressFn = std::function<absl::Status(int64_t done)>;
// Encodes `n` items into out[n * row] and sets reasons[i] (non-empty) for
// each item it could not encode; those rows are left zero.
using EncodeChunkFn = std::function<absl::Status(
    const CacheItem* items, int64_t n, float* out,
    std::vector<std::string>* reasons, const ChunkProgressFn& progress)>;
// The content fingerprint of an item that encoded (model/hidden_state_cache.h).
using ContentFn = std::function<absl::StatusOr<uint64_t>(const CacheItem& item)>;

struct Failure {
  std::string key;
  std::string reason;
};

bool IsBlankText(absl::string_view raw) {
  for (uint32_t cp : DecodeUtf8(HtmlUnescape(raw))) {
    if (!IsBertWhitespace(cp) && !IsBertControl(cp) && cp != 0) return false;
  }
  return true;
}

std::string OneLine(absl::string_view s) {
  std::string out(s);
  std::replace(out.begin(), out.end(), '\n', ' ');
  std::replace(out.begin(), out.end(), '\t', ' ');
  return out;
}

std::string ChunkPath(const std::string& dir, int64_t index) {
  return JoinPath(dir, absl::StrFormat("chunk-%06d.safetensors", index));
}

// Failed rows of a chunk, stored in its metadata as "row<TAB>reason" lines.
std::string EncodeFailedRows(const std::vector<std::string>& reasons) {
  std::string out;
  for (size_t i = 0; i < reasons.size(); ++i) {
    if (!reasons[i].empty()) {
      absl::StrAppend(&out, i, "\t", OneLine(reasons[i]), "\n");
    }
  }
  return out;
}

absl::Status DecodeFailedRows(absl::string_view text, int64_t n,
                              std::vector<std::string>* reasons) {
  reasons->assign(n, "");
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(line, absl::MaxSplits('\t', 1));
    int64_t row;
    if (!absl::SimpleAtoi(parts.first, &row) || row < 0 || row >= n ||
        parts.second.empty()) {
      return absl::DataLossError("bad failed_rows entry in chunk");
    }
    (*reasons)[row] = std::string(parts.second);
  }
  return absl::OkStatus();
}

std::string ImagePath(const CacheItem& item, const CacheBuildOptions& options) {
  return options.image_base_dir.empty() || item.value[0] == '/'
             ? item.value
             : JoinPath(options.image_base_dir, item.value);
}

class Chunker {
 public:
  Chunker(const std::string& dir, const std::string& fingerprint,
          int64_t num_states, int64_t hidden_size, DType dtype)
      : dir_(dir),
        fingerprint_(fingerprint),
        num_states_(num_states),
        hidden_size_(hidden_size),
        dtype_(dtype) {}

  absl::Status Write(int64_t index, int64_t first, int64_t n,
                     const std::vector<float>& states,
                     const std::vector<std::string>& reasons) const {
    std::string bytes;
    const int64_t count = n * num_states_ * hidden_size_;
    if (dtype_ == DType::kF16) {
      bytes.resize(count * 2);
      for (int64_t i = 0; i < count; ++i) {
        const uint16_t h = FloatToHalf(states[i]);
        std::memcpy(&bytes[i * 2], &h, 2);
      }
    } else {
      bytes.assign(reinterpret_cast<const char*>(states.data()), count * 4);
    }
    SafetensorsWriter writer;
    RETURN_IF_ERROR(writer.AddTensor("hidden_states", dtype_,
                                     {n, num_states_, hidden_size_}, bytes));
    writer.SetMetadata("build_fingerprint", fingerprint_);
    writer.SetMetadata("chunk_index", absl::StrCat(index));
    writer.SetMetadata("first_item", absl::StrCat(first));
    writer.SetMetadata("num_items", absl::StrCat(n));
    writer.SetMetadata("failed_rows", EncodeFailedRows(reasons));
    return writer.WriteFile(ChunkPath(dir_, index));
  }

  // Opens a chunk of an earlier run; an error says why it cannot be reused.
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(int64_t index,
                                                        int64_t first,
                                                        int64_t n) const {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                     SafetensorsFile::Open(ChunkPath(dir_, index)));
    const auto& meta = file->metadata();
    auto get = [&](const std::string& k) {
      auto it = meta.find(k);
      return it == meta.end() ? std::string("<missing>") : it->second;
    };
    if (get("build_fingerprint") != fingerprint_ ||
        get("chunk_index") != absl::StrCat(index) ||
        get("first_item") != absl::StrCat(first) ||
        get("num_items") != absl::StrCat(n) || !meta.count("failed_rows")) {
      return absl::FailedPreconditionError("chunk belongs to another build");
    }
    ASSIGN_OR_RETURN(TensorView view, file->Get("hidden_states"));
    if (view.dtype != dtype_ ||
        view.shape != std::vector<int64_t>{n, num_states_, hidden_size_}) {
      return absl::FailedPreconditionError("chunk has the wrong shape or dtype");
    }
    return file;
  }

 private:
  const std::string dir_;
  const std::string fingerprint_;
  const int64_t num_states_;
  const int64_t hidden_size_;
  const DType dtype_;
};

absl::StatusOr<CacheBuildResult> BuildCache(const std::vector<CacheItem>& all,
                                            const BackboneInfo& info,
                                            const std::string& modality,
                                            const EncodeChunkFn& encode,
                                            const ContentFn& content,
                                            const CacheBuildOptions& options) {
  const absl::Time start = absl::Now();
  if (options.output_path.empty()) {
    return absl::InvalidArgumentError("output_path is required");
  }
  if (options.chunk_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk_size must be >= 1, got ", options.chunk_size));
  }
  if (options.dtype != DType::kF16 && options.dtype != DType::kF32) {
    return absl::InvalidArgumentError("dtype must be F16 or F32");
  }
  if (info.num_states < 1 || info.hidden_size < 1) {
    return absl::InvalidArgumentError("encoder reports no states");
  }
  if (info.standin) {
    LOG(WARNING) << "building the " << modality << " cache with STAND-IN "
                 << "weights (" << info.name << "): metadata standin=true; "
                 << "states are not those of a trained model";
  }

  // Keys must be unique and non-empty: those that are not never reach the
  // encoder.
  std::vector<Failure> failures;
  std::vector<CacheItem> items;
  items.reserve(all.size());
  absl::flat_hash_set<absl::string_view> seen;
  for (const CacheItem& item : all) {
    if (item.key.empty()) {
      failures.push_back({"", "empty key"});
    } else if (!seen.insert(item.key).second) {
      failures.push_back({item.key, "duplicate key (first occurrence kept)"});
    } else {
      items.push_back(item);
    }
  }
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t row = info.num_states * info.hidden_size;

  // The build fingerprint: everything that changes the chunks' contents.
  uint32_t a = Crc32c(info.fingerprint, 0x243F6A88u);
  uint32_t b = Crc32c(info.config_json, 0x13198A2Eu);
  const std::string settings = absl::StrCat(
      modality, "|", info.name, "|", DTypeName(options.dtype), "|",
      options.chunk_size, "|", options.image_base_dir);
  a = Crc32c(settings, a);
  b = Crc32c(settings, b);
  for (const CacheItem& item : items) {
    a = Crc32c(item.value, Crc32c(item.key, a) ^ 0x5bd1e995u);
    b = Crc32c(item.key, Crc32c(item.value, b) ^ 0x1b873593u);
  }
  const std::string fingerprint = absl::StrFormat("%08x%08x", a, b);

  const std::string work_root = options.work_dir.empty()
                                    ? options.output_path + ".work"
                                    : options.work_dir;
  const std::string dir = JoinPath(work_root, modality + "-" + fingerprint);
  RETURN_IF_ERROR(CreateDirectories(dir));
  const Chunker chunker(dir, fingerprint, info.num_states, info.hidden_size,
                        options.dtype);

  CacheBuildResult result;
  result.fingerprint = fingerprint;
  const int64_t num_chunks = (n + options.chunk_size - 1) / options.chunk_size;
  LOG(INFO) << "build-cache " << modality << ": " << n << " items ("
            << failures.size() << " rejected keys), " << num_chunks
            << " chunks of " << options.chunk_size << ", backbone "
            << info.name << " [" << info.num_states << " x "
            << info.hidden_size << "], work dir " << dir;

  ProgressTracker::Options progress_options;
  progress_options.name = absl::StrCat("build-cache ", modality);
  progress_options.log_interval = options.progress_interval;
  ProgressTracker progress(progress_options);
  progress.Start(n, "encoding");

  // Pass 1: make every chunk exist and be valid.
  std::vector<float> states;
  std::vector<std::string> reasons;
  for (int64_t c = 0; c < num_chunks; ++c) {
    const int64_t first = c * options.chunk_size;
    const int64_t count = std::min(options.chunk_size, n - first);
    if (PathExists(ChunkPath(dir, c))) {
      absl::StatusOr<std::unique_ptr<SafetensorsFile>> old =
          chunker.Open(c, first, count);
      if (old.ok()) {
        ++result.chunks_reused;
        progress.Update(first + count);
        if (options.on_progress) RETURN_IF_ERROR(options.on_progress(first + count, n));
        continue;
      }
      LOG(WARNING) << "recomputing chunk " << c << ": " << old.status();
    }
    if (options.stop_after_chunks >= 0 &&
        result.chunks_computed >= options.stop_after_chunks) {
      return absl::AbortedError(absl::StrCat(
          "stopped after ", result.chunks_computed,
          " computed chunks as requested (stop_after_chunks); rerun to resume"));
    }
    states.assign(count * row, 0.0f);
    reasons.assign(count, "");
    RETURN_IF_ERROR(encode(items.data() + first, count, states.data(), &reasons,
                           [&](int64_t done_in_chunk) -> absl::Status {
                             return options.on_progress ? options.on_progress(first + done_in_chunk, n)
                                                        : absl::OkStatus();
                           }));
    RETURN_IF_ERROR(chunker.Write(c, first, count, states, reasons));
    ++result.chunks_computed;
    progress.Update(first + count);
    if (options.on_progress) RETURN_IF_ERROR(options.on_progress(first + count, n));
  }
  progress.Finish();

  // Pass 2: assemble the rows that encoded, in item order.
  std::vector<std::string> keys;
  keys.reserve(n);
  std::vector<uint64_t> content_fingerprints;
  content_fingerprints.reserve(n);
  std::vector<float> all_states;
  all_states.reserve(n * row);
  for (int64_t c = 0; c < num_chunks; ++c) {
    const int64_t first = c * options.chunk_size;
    const int64_t count = std::min(options.chunk_size, n - first);
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                     chunker.Open(c, first, count));
    ASSIGN_OR_RETURN(TensorView view, file->Get("hidden_states"));
    RETURN_IF_ERROR(
        DecodeFailedRows(file->metadata().at("failed_rows"), count, &reasons));
    for (int64_t i = 0; i < count; ++i) {
      const CacheItem& item = items[first + i];
      if (!reasons[i].empty()) {
        failures.push_back({item.key, reasons[i]});
        continue;
      }
      keys.push_back(item.key);
      ASSIGN_OR_RETURN(const uint64_t fp, content(item));
      content_fingerprints.push_back(fp);
      const size_t at = all_states.size();
      all_states.resize(at + row);
      RETURN_IF_ERROR(ReadAsFloat(view, i * row, row, all_states.data() + at));
    }
  }

  const std::string failures_path = options.failures_path.empty()
                                        ? options.output_path + ".failed.tsv"
                                        : options.failures_path;
  std::string report;
  for (const Failure& f : failures) {
    absl::StrAppend(&report, OneLine(f.key), "\t", OneLine(f.reason), "\n");
  }
  RETURN_IF_ERROR(WriteFileAtomically(failures_path, report));
  if (!failures.empty()) {
    LOG(WARNING) << "build-cache " << modality << ": " << failures.size()
                 << " items skipped (first: '" << failures[0].key << "': "
                 << failures[0].reason << "); all listed in " << failures_path;
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no item could be encoded (", failures.size(), " failed, see ",
        failures_path, ")"));
  }

  HiddenStateCacheInfo cache_info;
  cache_info.modality = modality;
  cache_info.backbone = info.name;
  cache_info.backbone_config = info.config_json;
  cache_info.fingerprint = fingerprint;
  cache_info.standin = info.standin;
  cache_info.extra = options.extra_metadata;
  cache_info.backbone_fingerprint = info.fingerprint;
  cache_info.extra["num_failed"] = absl::StrCat(failures.size());
  RETURN_IF_ERROR(WriteHiddenStateCache(options.output_path, keys,
                                        all_states.data(), info.num_states,
                                        info.hidden_size, options.dtype,
                                        cache_info, content_fingerprints));
  // Read back through the trainer's reader: what we wrote must open.
  ASSIGN_OR_RETURN(std::unique_ptr<HiddenStateCache> written,
                   HiddenStateCache::Open(options.output_path));
  if (written->num_items() != static_cast<int64_t>(keys.size()) ||
      written->num_states() != info.num_states ||
      written->hidden_size() != info.hidden_size) {
    return absl::InternalError(absl::StrCat(
        options.output_path, " reads back with a different shape"));
  }
  if (!options.keep_work_dir) {
    RETURN_IF_ERROR(RemoveRecursively(dir));
    absl::StatusOr<std::vector<std::string>> left = ListDirectory(work_root);
    if (left.ok() && left->empty()) RETURN_IF_ERROR(RemoveRecursively(work_root));
  }

  result.items_written = static_cast<int64_t>(keys.size());
  result.items_failed = static_cast<int64_t>(failures.size());
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  LOG(INFO) << "build-cache " << modality << ": wrote " << result.items_written
            << " items to " << options.output_path << " ("
            << result.chunks_computed << " chunks computed, "
            << result.chunks_reused << " reused, " << result.items_failed
            << " failed) in " << absl::StrFormat("%.1f", result.seconds)
            << " s" << (info.standin ? " [STAND-IN weights]" : "");
  return result;
}

}  // namespace

absl::StatusOr<CacheBuildResult> BuildTextCache(
    const std::vector<CacheItem>& items, TextEncoder* encoder,
    const CacheBuildOptions& options) {
  const int64_t row = encoder->info().num_states * encoder->info().hidden_size;
  EncodeChunkFn encode = [&](const CacheItem* chunk, int64_t n, float* out,
                             std::vector<std::string>* reasons,
                             const ChunkProgressFn& /*progress*/) -> absl::Status {
    std::vector<std::string> texts;
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < n; ++i) {
      if (IsBlankText(chunk[i].value)) {
        (*reasons)[i] = "empty title";
      } else {
        texts.push_back(chunk[i].value);
        rows.push_back(i);
      }
    }
    if (texts.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::vector<float> states, encoder->Encode(texts));
    for (size_t k = 0; k < rows.size(); ++k) {
      std::memcpy(out + rows[k] * row, states.data() + k * row,
                  row * sizeof(float));
    }
    return absl::OkStatus();
  };
  ContentFn content = [](const CacheItem& item) -> absl::StatusOr<uint64_t> {
    return ItemContentFingerprint(item.value);
  };
  return BuildCache(items, encoder->info(), "text", encode, content, options);
}

absl::StatusOr<CacheBuildResult> BuildImageCache(
    const std::vector<CacheItem>& items, ImageEncoder* encoder,
    const CacheBuildOptions& options) {
  if (options.images_per_batch < 1) {
    return absl::InvalidArgumentError("images_per_batch must be >= 1");
  }
  const int64_t row = encoder->info().num_states * encoder->info().hidden_size;
  EncodeChunkFn encode = [&](const CacheItem* chunk, int64_t n, float* out,
                             std::vector<std::string>* reasons,
                             const ChunkProgressFn& progress) -> absl::Status {
    for (int64_t start = 0; start < n; start += options.images_per_batch) {
      const int64_t end = std::min(n, start + options.images_per_batch);
      std::vector<RgbImage> images;
      std::vector<int64_t> rows;
      for (int64_t i = start; i < end; ++i) {
        if (chunk[i].value.empty()) {
          (*reasons)[i] = "empty image path";
          continue;
        }
        const std::string path = ImagePath(chunk[i], options);
        absl::StatusOr<RgbImage> image = ReadImageFile(path);
        if (!image.ok()) {
          (*reasons)[i] = std::string(image.status().message());
          continue;
        }
        images.push_back(*std::move(image));
        rows.push_back(i);
      }
      if (!images.empty()) {
        ASSIGN_OR_RETURN(std::vector<float> states, encoder->Encode(images));
        for (size_t k = 0; k < rows.size(); ++k) {
          std::memcpy(out + rows[k] * row, states.data() + k * row,
                      row * sizeof(float));
        }
      }
      if (end < n) RETURN_IF_ERROR(progress(end));
    }
    return absl::OkStatus();
  };
  // An image's content is its file: a re-encoded JPEG under the same name is
  // a changed item.
  ContentFn content = [&options](const CacheItem& item) -> absl::StatusOr<uint64_t> {
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(ImagePath(item, options)));
    return ItemContentFingerprint(bytes);
  };
  return BuildCache(items, encoder->info(), "image", encode, content, options);
}

}  // namespace recsys
