// User-item interaction sequences with item keys mapped to dense ids.
//
// Two input formats:
//   - "sequences" (the shared data's users.tsv): `user_key<TAB>item item ...`,
//     each user's items already in chronological order;
//   - "csv": `user,item,timestamp` rows, an optional header first (a row
//     whose third field is named timestamp, time or ts, any case); every
//     other timestamp must be a finite number (INVALID_ARGUMENT naming the
//     line otherwise: a first row with a date in it is not silently dropped
//     as a header). Each user's rows are sorted by timestamp (stable, so ties
//     keep file order).
// Dense item ids are 0..num_items-1 in lexicographic key order, which makes
// them independent of the file order and of the user order.
//
// Thread-safety: an InteractionData is a plain value; read-only use from many
// threads is safe.
#ifndef RECSYS_TRAINER_DATA_INTERACTIONS_H_
#define RECSYS_TRAINER_DATA_INTERACTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace recsys {

struct InteractionData {
  std::vector<std::string> item_keys;  // dense id -> key, sorted
  absl::flat_hash_map<std::string, int32_t> item_id;  // key -> dense id
  std::vector<std::string> user_keys;  // in file order (first appearance)
  std::vector<std::vector<int32_t>> sequences;  // per user, chronological

  int32_t num_items() const { return static_cast<int32_t>(item_keys.size()); }
  int32_t num_users() const { return static_cast<int32_t>(user_keys.size()); }
  int64_t num_interactions() const;
};

enum class InteractionFormat { kAuto, kSequences, kCsv };

// Parses `contents`. kAuto picks kCsv when the first non-empty line has a
// comma and no tab. INVALID_ARGUMENT names the line of a malformed row.
absl::StatusOr<InteractionData> ParseInteractions(
    const std::string& contents, InteractionFormat format);

// Reads and parses a file; kAuto also treats a ".csv" suffix as kCsv.
absl::StatusOr<InteractionData> LoadInteractions(
    const std::string& path, InteractionFormat format = InteractionFormat::kAuto);

// Builds the dense-id view from per-user key sequences (used by the parsers
// and by the synthetic generator).
InteractionData FromKeySequences(
    std::vector<std::string> user_keys,
    const std::vector<std::vector<std::string>>& key_sequences);

// A hex digest of the item keys and sequences: identifies the data a model
// was trained on (goes into the model manifest).
std::string Fingerprint(const InteractionData& data);

}  // namespace recsys

#endif  // RECSYS_TRAINER_DATA_INTERACTIONS_H_
