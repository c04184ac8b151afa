// The bridge from the cached item states (trainer/data/item_state_store.h)
// to the recommender's item tower (model/nn/recommender.h): the IISAN
// options that match a store's modalities, and the inputs for a set of items.
//
// Thread-safety: pure functions over an immutable store.
#ifndef RECSYS_TRAINER_TRAINING_ITEM_INPUTS_H_
#define RECSYS_TRAINER_TRAINING_ITEM_INPUTS_H_

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "model/nn/recommender.h"
#include "trainer/data/item_state_store.h"

namespace recsys {

// IISAN options matching the store's modalities (dims and block counts).
IisanItemEncoderOptions ItemEncoderOptionsFor(const ItemStateStore& store,
                                              int64_t bottleneck,
                                              int64_t embedding_dim,
                                              bool inter_path);

// The network-config entries of the store's modalities.
std::vector<ModalityConfig> ModalityConfigsFor(const ItemStateStore& store);

// Builds the inputs for `ids` on `device`: ids always, states when `store` is
// given (gathered on the CPU from the mapped caches, then moved).
absl::StatusOr<ItemInputs> GatherItemInputs(const ItemStateStore* store,
                                            const std::vector<int64_t>& ids,
                                            const torch::Device& device);

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_ITEM_INPUTS_H_
