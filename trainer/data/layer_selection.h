// Which cached backbone states feed the side blocks ("layer dropping").
//
// A cache holds num_states = L + 1 states per item (embedding output first).
//   kEverySecond (IISAN): states 0, 2, 4, ... -> 7 blocks for BERT/ViT-base.
//   kGroup (IISAN-Versa): the L layers split into G nearly equal consecutive
//     groups; the last layer of each group is kept -> G blocks whatever L is,
//     so encoders of different depths give the same number of blocks.
//   kAll: every state.
#ifndef RECSYS_TRAINER_DATA_LAYER_SELECTION_H_
#define RECSYS_TRAINER_DATA_LAYER_SELECTION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys {

enum class LayerMode { kEverySecond, kGroup, kAll };

struct LayerSelection {
  LayerMode mode = LayerMode::kEverySecond;
  int num_groups = 6;  // kGroup only
};

// "every_second" | "group" | "all".
absl::StatusOr<LayerMode> ParseLayerMode(absl::string_view name);
std::string LayerModeName(LayerMode mode);

// Indices into [0, num_states). INVALID_ARGUMENT when num_states < 1 or, in
// group mode, when num_groups is outside [1, num_states - 1].
absl::StatusOr<std::vector<int>> SelectStates(int num_states,
                                              const LayerSelection& selection);

}  // namespace recsys

#endif  // RECSYS_TRAINER_DATA_LAYER_SELECTION_H_
