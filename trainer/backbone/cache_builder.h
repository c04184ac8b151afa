// Builds the hidden-state cache of one modality (trainer/cache format,
// written through WriteHiddenStateCache) from an item table and a frozen
// encoder, resumably.
//
// The valid items are cut into chunks of `chunk_size`; each chunk's states
// are written atomically to <work_dir>/<build fingerprint>/chunk-NNNNNN.
// safetensors. A restarted build reuses every chunk that opens, validates
// and carries the same build fingerprint (weights + config + keys + inputs +
// chunking + dtype), recomputes the rest, and finally assembles the output
// file and removes the chunk directory. Because stored values are rounded
// to the output dtype in the chunks, an interrupted-then-resumed build
// writes the same bytes as an uninterrupted one.
//
// Items that cannot be encoded (empty or duplicate key, empty title,
// missing or undecodable image) are skipped, logged, and listed as
// `key<TAB>reason` lines in the failure report; they never fail the build.
//
// Thread-safety: one build per output path at a time (the chunk directory
// is not locked).
#ifndef RECSYS_TRAINER_BACKBONE_CACHE_BUILDER_H_
#define RECSYS_TRAINER_BACKBONE_CACHE_BUILDER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/safetensors.h"
#include "model/encoders/encoder.h"
#include "model/items_table.h"

namespace recsys {

// One line of the items table (model/items_table.h): key and a title or an
// image path. An empty value is reported as a failed item by the build.
using CacheItem = ItemTableRow;

struct CacheBuildOptions {
  std::string output_path;        // the cache file (required)
  std::string work_dir;           // chunk files; empty: output_path + ".work"
  std::string failures_path;      // empty: output_path + ".failed.tsv"
  int64_t chunk_size = 1024;      // items per chunk file
  DType dtype = DType::kF16;      // F16 or F32
  // Resolves relative image paths (image builds); empty: as given.
  std::string image_base_dir;
  int64_t images_per_batch = 64;  // images decoded at a time
  // Test hook: after computing this many chunks in this run, stop with
  // ABORTED, leaving the chunks for a resumed build. Negative: never.
  int64_t stop_after_chunks = -1;
  bool keep_work_dir = false;     // keep chunk files after assembly
  absl::Duration progress_interval = absl::Seconds(5);
  // Called with the items done so far (reused or encoded) and their total
  // after every chunk, and for images after every batch; a non-OK status
  // stops the build with that status, keeping the chunks already written
  // for a resumed build (a job's cancel). Empty: none.
  std::function<absl::Status(int64_t done, int64_t total)> on_progress;
  std::map<std::string, std::string> extra_metadata;  // copied verbatim
};

struct CacheBuildResult {
  int64_t items_written = 0;
  int64_t items_failed = 0;
  int64_t chunks_computed = 0;  // in this run
  int64_t chunks_reused = 0;    // valid chunks of an earlier run
  std::string fingerprint;      // build fingerprint (cache metadata)
  double seconds = 0;
};

// INVALID_ARGUMENT for bad options or when no item could be encoded;
// ABORTED when stop_after_chunks stopped the build; encoder and I/O errors
// otherwise.
absl::StatusOr<CacheBuildResult> BuildTextCache(
    const std::vector<CacheItem>& items, TextEncoder* encoder,
    const CacheBuildOptions& options);
absl::StatusOr<CacheBuildResult> BuildImageCache(
    const std::vector<CacheItem>& items, ImageEncoder* encoder,
    const CacheBuildOptions& options);

}  // namespace recsys

#endif  // RECSYS_TRAINER_BACKBONE_CACHE_BUILDER_H_
