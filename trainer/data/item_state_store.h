// The cached backbone states of the catalog's items, by dense item id, for
// one or more modalities (one HiddenStateCache file each), restricted to the
// states the side blocks use.
//
// The caches stay memory-mapped (F16 or F32); Gather() copies and converts
// only the rows and states a batch needs. Modalities are ordered text first,
// then image, whatever the order of the paths given.
//
// Thread-safety: immutable after Create(); Gather() may run concurrently.
#ifndef RECSYS_TRAINER_DATA_ITEM_STATE_STORE_H_
#define RECSYS_TRAINER_DATA_ITEM_STATE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/hidden_state_cache.h"
#include "trainer/data/layer_selection.h"

namespace recsys {

class ItemStateStore {
 public:
  struct Options {
    std::vector<std::string> cache_paths;  // one per modality
    LayerSelection layers;                 // which states feed the blocks
    // Items absent from a cache get all-zero states instead of NOT_FOUND
    // (a WARNING names how many and the first few).
    bool allow_missing_items = false;
    // Even with allow_missing_items, more than this fraction of the catalog
    // missing from a cache is an error: most items would look alike.
    double max_missing_fraction = 0.5;
    // Items whose selected states are bit-identical to another item's cannot
    // be told apart by content: any such item gives a WARNING, more than
    // this fraction of the items an error (a degenerate cache).
    double max_duplicate_fraction = 0.5;
    // Serve (x - mean) / std per state and dimension, with statistics over
    // the catalog's items; a dimension constant over the catalog becomes 0.
    // A fixed affine map of the inputs: it matters for backbones whose states
    // share a large common component (a randomly initialised stand-in BERT's
    // CLS states have mean pairwise cosine 0.999), which the side network
    // otherwise cannot separate.
    bool standardize = false;
    // After the checks, keep the selected (and standardized) states of every
    // item as one dense F32 array per modality when it takes at most this
    // many bytes, and unmap the cache: Gather() is then a row copy and the
    // trainer indexes the array (or its device copy) directly, instead of
    // converting F16 and standardizing per batch. 0: never (Gather reads
    // the mapping, as before). Scientific's stand-in BERT cache: 85 MB.
    int64_t dense_max_bytes = int64_t{4} << 30;
  };

  // `item_keys`: dense id -> key. INVALID_ARGUMENT for two caches of the same
  // modality or an unknown modality; NOT_FOUND for an item missing from a
  // cache (unless allowed).
  //
  // Garbage in fails here, in one pass over the catalog's selected states per
  // cache: INVALID_ARGUMENT (naming the file, the item, the state and the
  // dimension) for a NaN or Inf; for states that are the same for every item
  // (two or more items); for more than max_duplicate_fraction of the items
  // sharing their states with another item; for more than
  // max_missing_fraction of the catalog missing; and (standardize) for
  // statistics or standardized values that would not be finite floats.
  static absl::StatusOr<std::unique_ptr<ItemStateStore>> Create(
      const Options& options, const std::vector<std::string>& item_keys);

  int num_modalities() const { return static_cast<int>(modalities_.size()); }
  const std::string& modality(int m) const { return modalities_[m].name; }
  // Index of modality `name`, or -1.
  int IndexOf(const std::string& name) const;
  int64_t num_blocks(int m) const {
    return static_cast<int64_t>(modalities_[m].states.size());
  }
  int64_t hidden_size(int m) const { return modalities_[m].hidden_size; }
  const std::vector<int>& state_indices(int m) const { return modalities_[m].states; }
  const HiddenStateCacheInfo& info(int m) const { return modalities_[m].info; }
  int64_t num_items() const { return num_items_; }

  // Per-state, per-dimension statistics used when standardizing:
  // [num_blocks(m) * hidden_size(m)] each; empty when not standardizing.
  const std::vector<float>& mean(int m) const { return modalities_[m].mean; }
  const std::vector<float>& inv_std(int m) const { return modalities_[m].inv_std; }
  // Writes [ids.size(), num_blocks(m), hidden_size(m)] floats to `out`.
  // INVALID_ARGUMENT for an id outside [0, num_items).
  absl::Status Gather(int m, const std::vector<int64_t>& ids, float* out) const;
  // The dense [num_items, num_blocks(m), hidden_size(m)] F32 states (what
  // Gather() serves, row = dense item id), or nullptr when they did not fit
  // (Options::dense_max_bytes). Lives as long as the store.
  const float* dense_states(int m) const {
    return modalities_[m].dense.empty() ? nullptr : modalities_[m].dense.data();
  }

 private:
  struct Modality {
    std::string name;
    std::string path;
    std::unique_ptr<HiddenStateCache> cache;  // null once `dense` is built
    HiddenStateCacheInfo info;
    int64_t hidden_size = 0;
    std::vector<int64_t> row_of_item;  // -1: missing (zeros)
    std::vector<int> states;
    std::vector<float> mean;     // standardize only
    std::vector<float> inv_std;  // standardize only
    std::vector<float> dense;    // see dense_states()
  };
  // The load-time pass over modality m: validity checks, and the statistics
  // when `standardize`.
  absl::Status ScanStates(int m, const Options& options);
  ItemStateStore() = default;

  int64_t num_items_ = 0;
  std::vector<Modality> modalities_;
};

}  // namespace recsys

#endif  // RECSYS_TRAINER_DATA_ITEM_STATE_STORE_H_
