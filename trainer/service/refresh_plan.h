// What an incremental embedding refresh will do, decided before any state is
// encoded or any tensor built: for every item of the updated catalog, where
// its backbone states come from (the old cache, or the frozen backbone) and
// where its embedding comes from (the parent version, or the side network);
// and which of the parent's items drop out. LibTorch-free, so the Trainer
// service checks a refresh at submit time with the same code the worker
// runs (embedding_refresh.h).
//
// An item's states are reused when the old cache holds its key with the
// same content fingerprint (model/hidden_state_cache.h) as its value in the
// updated catalog; a cache without fingerprints (written before them) knows
// no item's content, so every item is encoded ("unknown"). An item's
// embedding is copied from the parent when its states are reused and the old
// cache is the very cache the parent was made from (its fingerprint equals
// the one the parent's manifest recorded): the same states through the same
// networks give the same embedding, and copying keeps it bit-identical.
// Otherwise the item is embedded again ("reembedded" when only that).
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

struct RefreshPlan {
  // The updated catalog in its order: the new version's rows.
  std::vector<std::string> keys;
  std::vector<std::string> contents;          // titles, as the table has them
  std::vector<uint64_t> content_fingerprints;
  std::vector<int64_t> cache_row;   // row of the old cache to reuse; -1: encode
  std::vector<int64_t> parent_row;  // parent embedding row to copy; -1: embed
  int modality = 0;                 // index of the text modality in the config

  int64_t reused = 0;      // states reused and embedding copied from the parent
  int64_t recomputed = 0;  // states encoded by the backbone (added + changed + unknown)
  int64_t added = 0;       // keys in neither the old cache nor the parent
  int64_t changed = 0;     // in the old cache with another content fingerprint
  int64_t unknown = 0;     // in the old cache, which stores no fingerprints
  int64_t reembedded = 0;  // states reused, embedding recomputed
  int64_t removed = 0;     // parent items absent from the updated catalog
  std::vector<std::string> removed_keys;  // the first few, for the log
};

// Checks that `parent` can be refreshed with `cache` and plans it. Field
// names in errors are the RefreshJobSpec's ("spec.refresh.*"):
//   FAILED_PRECONDITION: the parent is not IISAN, has an image side, or its
//     manifest records no backbone fingerprint; the cache's backbone
//     fingerprint is not the parent's;
//   INVALID_ARGUMENT: the cache is not a text cache, or its width or state
//     count does not fit the parent's networks; an empty catalog.
absl::StatusOr<RefreshPlan> PlanRefresh(const ModelVersionManifest& parent,
                                        const std::vector<std::string>& parent_keys,
                                        const std::vector<ItemTableRow>& catalog,
                                        const HiddenStateCache& cache);

}  // namespace recsys

#endif  // RECSYS_TRAINER_SERVICE_REFRESH_PLAN_H_
