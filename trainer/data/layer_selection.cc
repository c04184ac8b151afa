#include "trainer/data/layer_selection.h"

#include "absl/strings/str_cat.h"

namespace recsys {

absl::StatusOr<LayerMode> ParseLayerMode(absl::string_view name) {
  if (name == "every_second") return LayerMode::kEverySecond;
  if (name == "group") return LayerMode::kGroup;
  if (name == "all") return LayerMode::kAll;
  return absl::InvalidArgumentError(absl::StrCat(
      "layer_mode \"", name, "\": expected every_second, group or all"));
}

std::string LayerModeName(LayerMode mode) {
  switch (mode) {
    case LayerMode::kEverySecond:
      return "every_second";
    case LayerMode::kGroup:
      return "group";
    case LayerMode::kAll:
      return "all";
  }
  return "?";
}

absl::StatusOr<std::vector<int>> SelectStates(int num_states,
                                              const LayerSelection& selection) {
  if (num_states < 1) {
    return absl::InvalidArgumentError("a cache needs at least one state");
  }
  std::vector<int> out;
  switch (selection.mode) {
    case LayerMode::kEverySecond:
      for (int i = 0; i < num_states; i += 2) out.push_back(i);
      break;
    case LayerMode::kAll:
      for (int i = 0; i < num_states; ++i) out.push_back(i);
      break;
    case LayerMode::kGroup: {
      const int layers = num_states - 1;
      const int g = selection.num_groups;
      if (g < 1 || g > layers) {
        return absl::InvalidArgumentError(absl::StrCat(
            "num_groups must be in [1, ", layers, "] for ", layers,
            " layers, got ", g));
      }
      // Group k covers layers (ceil(k*L/G), ceil((k+1)*L/G)]; keep its last.
      for (int k = 0; k < g; ++k) out.push_back(((k + 1) * layers + g - 1) / g);
      break;
    }
  }
  return out;
}

}  // namespace recsys
