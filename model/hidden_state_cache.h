// The hidden-state cache: per-layer CLS states of a frozen backbone for every
// item of a catalog, one safetensors file per modality.
//
// File layout (format "recsys.hidden_states.v1"):
//   tensor "hidden_states"  [num_items, num_states, hidden_size], F16 or F32;
//                           num_states = layers + 1 (embedding output first)
//   tensor "key_bytes"      U8  [total key bytes]: item keys, concatenated
//   tensor "key_offsets"    I64 [num_items + 1]: key i is
//                           key_bytes[key_offsets[i] : key_offsets[i+1]]
//   tensor "content_fingerprints"  I64 [num_items] (optional): per item, the
//                           ItemContentFingerprint of the input the backbone
//                           encoded (the title as in the items table, or the
//                           image file's bytes), as the bits of a uint64.
//                           Caches written before it have none: their items'
//                           contents are unknown, and an embedding refresh
//                           recomputes them.
//   __metadata__: format, modality ("text" | "image"), backbone (a name),
//                 backbone_config (JSON), fingerprint (hex: this file's
//                 backbone + inputs), backbone_fingerprint (the backbone alone:
//                 weights, config, tokenizer; the same for every cache that
//                 backbone writes; absent in older stand-in caches), standin
//                 ("true" when the weights were a seeded stand-in), and any
//                 extra entries the writer was given.
//
// Thread-safety: a HiddenStateCache is immutable after Open() and safe to read
// from many threads. Rows are served straight from the memory mapping.
#ifndef RECSYS_MODEL_HIDDEN_STATE_CACHE_H_
#define RECSYS_MODEL_HIDDEN_STATE_CACHE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/safetensors.h"

namespace recsys {

inline constexpr char kHiddenStateCacheFormat[] = "recsys.hidden_states.v1";

struct HiddenStateCacheInfo {
  std::string modality;         // "text" or "image"
  std::string backbone;         // e.g. "bert-standin-6x256"
  std::string backbone_config;  // JSON
  std::string fingerprint;      // hex digest identifying weights + inputs
  std::string backbone_fingerprint;  // weights + config only; empty: unknown
  bool standin = false;         // weights were seeded, not loaded
  std::map<std::string, std::string> extra;  // more metadata, verbatim
};

// The per-item content fingerprint: a 64-bit digest of the exact bytes the
// backbone encodes for an item (its title as the items table has it, or its
// image file). Two items with the same fingerprint and the same backbone
// fingerprint have the same states.
uint64_t ItemContentFingerprint(absl::string_view content);

class HiddenStateCache {
 public:
  // Maps and validates the file: format tag, tensor shapes and dtypes, key
  // offsets monotone and inside key_bytes, keys unique and non-empty.
  static absl::StatusOr<std::unique_ptr<HiddenStateCache>> Open(
      const std::string& path);

  int64_t num_items() const { return num_items_; }
  int64_t num_states() const { return num_states_; }
  int64_t hidden_size() const { return hidden_size_; }
  DType dtype() const { return states_.dtype; }
  const HiddenStateCacheInfo& info() const { return info_; }
  const std::vector<std::string>& keys() const { return keys_; }

  // Row of `key`, or -1 when absent.
  int64_t RowOf(const std::string& key) const;

  // Whether the file stores per-item content fingerprints (older caches do
  // not), and row `row`'s; nullopt when it has none. REQUIRES: a valid row.
  bool has_content_fingerprints() const { return !content_fingerprints_.empty(); }
  std::optional<uint64_t> ContentFingerprint(int64_t row) const;

  // Copies the [num_states, hidden_size] states of each row in `rows` into
  // `out` (rows.size() * num_states * hidden_size floats), converting F16 to
  // float. INVALID_ARGUMENT for a row outside [0, num_items).
  absl::Status Gather(const std::vector<int64_t>& rows, float* out) const;

 private:
  HiddenStateCache() = default;

  std::unique_ptr<SafetensorsFile> file_;
  TensorView states_;
  int64_t num_items_ = 0;
  int64_t num_states_ = 0;
  int64_t hidden_size_ = 0;
  std::vector<std::string> keys_;
  std::vector<uint64_t> content_fingerprints_;  // empty: none stored
  absl::flat_hash_map<std::string, int64_t> row_of_;
  HiddenStateCacheInfo info_;
};

// Writes a cache file atomically. `states` holds num_items x num_states x
// hidden_size floats in row-major order; `dtype` (F16 or F32) is how they are
// stored. `content_fingerprints`: one per key (ItemContentFingerprint of
// what was encoded), or empty to store none. INVALID_ARGUMENT for
// mismatched sizes or duplicate/empty keys.
absl::Status WriteHiddenStateCache(const std::string& path,
                                   const std::vector<std::string>& keys,
                                   const float* states, int64_t num_states,
                                   int64_t hidden_size, DType dtype,
                                   const HiddenStateCacheInfo& info,
                                   const std::vector<uint64_t>& content_fingerprints = {});

// The same, streamed: `row(i, out)` writes item i's num_states x hidden_size
// floats to `out`; it is called for i = 0, 1, ... in order while the file is
// written, so memory stays at a few rows whatever the catalog size.
using HiddenStateRowSource = std::function<absl::Status(int64_t row, float* out)>;
absl::Status WriteHiddenStateCache(const std::string& path,
                                   const std::vector<std::string>& keys,
                                   const HiddenStateRowSource& row, int64_t num_states,
                                   int64_t hidden_size, DType dtype,
                                   const HiddenStateCacheInfo& info,
                                   const std::vector<uint64_t>& content_fingerprints = {});

}  // namespace recsys

#endif  // RECSYS_MODEL_HIDDEN_STATE_CACHE_H_
