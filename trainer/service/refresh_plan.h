// What an incremental embedding refresh will do, decided before any state is
// encoded or any tensor built: for every item of the updated catalog, where
// its backbone states come from (the old cache, or the frozen backbone) and
// where its embedding comes from (the parent version, or the side network);
// and which of the parent's items drop out. LibTorch-free, so the Trainer
// service checks a refresh at submit time with the same code the worker
// runs (embedding_refresh.h).
//
// Per modality of the version (text, image), an item's states are reused
// when that modality's old cache holds its key with the same content
// fingerprint (model/hidden_state_cache.h) as its value in the updated
// catalog (the title, the image file's bytes); a cache without fingerprints
// (written before them) knows no item's content, so every item is encoded
// ("unknown"). An item's embedding is copied from the parent when all its
// states are reused and every old cache is the very cache the parent was
// made from (its fingerprint equals the one the parent's manifest
// recorded): the same states through the same networks give the same
// embedding, and copying keeps it bit-identical. Otherwise the item is
// embedded again ("reembedded" when only that).
//
// Thread-safety: pure functions.
#ifndef RECSYS_TRAINER_SERVICE_REFRESH_PLAN_H_
#define RECSYS_TRAINER_SERVICE_REFRESH_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/hidden_state_cache.h"
#include "model/items_table.h"
#include "model/model_version.h"

namespace recsys {

// One modality of the version, as the caller found it for the updated
// catalog: the cache to reuse states from, and per catalog item the value
// the backbone would encode (a title, or an image file's path) and its
// content fingerprint (of the title, or of the image file's bytes).
struct RefreshSideInput {
  const HiddenStateCache* cache = nullptr;
  std::vector<std::string> values;
  std::vector<uint64_t> content_fingerprints;
};

struct RefreshSidePlan {
  std::string modality;
  int config_index = 0;             // in the parent's NetworkConfig
  const HiddenStateCache* cache = nullptr;
  std::vector<std::string> values;
  std::vector<uint64_t> content_fingerprints;
  std::vector<int64_t> cache_row;   // row of `cache` to reuse; -1: encode
  int64_t encoded = 0;
};

struct RefreshPlan {
  // The updated catalog in its order: the new version's rows.
  std::vector<std::string> keys;
  std::vector<RefreshSidePlan> sides;  // the parent's modalities, config order
  std::vector<int64_t> parent_row;     // parent embedding row to copy; -1: embed

  int64_t reused = 0;      // every side's states reused, embedding copied
  int64_t recomputed = 0;  // items with at least one side encoded by its backbone
  int64_t added = 0;       //   of them: keys in no side's cache
  int64_t changed = 0;     //   in a cache with another content fingerprint
  int64_t unknown = 0;     //   otherwise: a cache that stores no fingerprints
  int64_t reembedded = 0;  // states all reused, embedding recomputed
  int64_t removed = 0;     // parent items absent from the updated catalog
  std::vector<std::string> removed_keys;  // the first few, for the log
};

// Checks that `parent` can be refreshed with these sides and plans it.
// `sides[i]` is the parent's i-th modality (NetworkConfig order); `keys` the
// updated catalog. Field names in errors are the RefreshJobSpec's:
//   FAILED_PRECONDITION: the parent is not IISAN, or its manifest records no
//     backbone fingerprint for a modality; a cache's backbone fingerprint is
//     not the parent's;
//   INVALID_ARGUMENT: a cache of another modality, width or state count; a
//     side missing; an empty catalog.
absl::StatusOr<RefreshPlan> PlanRefresh(const ModelVersionManifest& parent,
                                        const std::vector<std::string>& parent_keys,
                                        const std::vector<std::string>& keys,
                                        std::vector<RefreshSideInput> sides);

// The sides of `parent` for the updated `catalog` (key<TAB>title: its keys
// and order, and the text values): the text side's values are the titles;
// the image side's the paths of `images_table` (key<TAB>path; relative paths
// against that table's directory), fingerprinted by reading each file.
// INVALID_ARGUMENT naming the field for a modality of the version without
// its cache or table, a cache or table given for a modality the version
// lacks, or a catalog item without an image; NOT_FOUND for an unreadable
// image file.
absl::StatusOr<std::vector<RefreshSideInput>> RefreshSidesFor(
    const ModelVersionManifest& parent, const std::vector<ItemTableRow>& catalog,
    const HiddenStateCache* text_cache, const HiddenStateCache* image_cache,
    const std::string& images_table);

// The spec field naming modality `m`'s cache ("spec.refresh.text_cache" or
// "spec.refresh.image_cache").
std::string RefreshCacheField(const std::string& modality);

}  // namespace recsys

#endif  // RECSYS_TRAINER_SERVICE_REFRESH_PLAN_H_
