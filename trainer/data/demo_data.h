// A synthetic demo catalog with planted structure: the product's embedded
// default when no real data is present, and the data of the end-to-end
// learning test.
//
// Every item belongs to a cluster c = (category a, style b). The text states
// carry the category (and not the style), the image states the style (and not
// the category), each mixed into every layer with a strength that grows with
// depth, plus a per-item identity vector and noise. A user lives in one
// cluster: each next item comes from the same cluster with probability
// stay_probability (else from a random cluster), drawn by a Zipf-like
// within-cluster popularity. So the next item is predictable from the
// history's clusters, which only the two modalities together identify:
// text alone narrows it to one category (num_styles clusters), image alone to
// one style.
#ifndef RECSYS_TRAINER_DATA_DEMO_DATA_H_
#define RECSYS_TRAINER_DATA_DEMO_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/safetensors.h"
#include "trainer/data/interactions.h"

namespace recsys {

struct DemoDataOptions {
  int num_items = 2000;
  int num_users = 4000;
  int num_categories = 8;         // visible in the text states
  int num_styles = 8;             // visible in the image states
  int min_sequence_length = 5;
  int max_sequence_length = 15;
  double stay_probability = 0.9;  // next item from the same cluster
  int text_states = 13;           // embedding output + 12 layers
  int text_hidden = 768;
  int image_states = 13;
  int image_hidden = 768;
  float signal = 1.0f;            // cluster signal strength in the last state
  float noise = 1.0f;             // per-item, per-state noise
  DType dtype = DType::kF16;      // how the caches are stored
  uint64_t seed = 7;
};

struct DemoData {
  std::vector<std::string> item_keys;  // "SYN00000", ...
  std::vector<std::string> titles;     // "<style adjective> <category noun> #i"
  std::vector<int> category;           // per item
  std::vector<int> style;              // per item
  std::vector<std::string> user_keys;
  std::vector<std::vector<std::string>> sequences;  // item keys per user
  std::vector<float> text_states;   // [items, text_states, text_hidden]
  std::vector<float> image_states;  // [items, image_states, image_hidden]
};

DemoData GenerateDemoData(const DemoDataOptions& options);

// Writes items.tsv, users.tsv, text_states.safetensors and
// image_states.safetensors under `out_dir` (created if needed).
absl::Status WriteDemoData(const DemoData& data, const DemoDataOptions& options,
                           const std::string& out_dir);

}  // namespace recsys

#endif  // RECSYS_TRAINER_DATA_DEMO_DATA_H_
