#include "trainer/data/demo_data.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "model/hidden_state_cache.h"

namespace recsys {
namespace {

constexpr const char* kNouns[] = {
    "microscope", "pipette", "beaker", "multimeter", "caliper", "thermometer",
    "centrifuge", "oscilloscope", "soldering iron", "filament", "stepper motor",
    "glove", "scale", "magnifier", "flask", "sensor"};
constexpr const char* kAdjectives[] = {
    "red", "blue", "steel", "matte", "glossy", "compact", "round", "square",
    "green", "black", "white", "striped", "clear", "golden", "rugged", "slim"};

// [groups, states, hidden] directions, one per group and state.
std::vector<float> Directions(std::mt19937_64& rng, int groups, int states,
                              int hidden) {
  std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(hidden * 1.0f));
  std::vector<float> v(static_cast<size_t>(groups) * states * hidden);
  for (float& x : v) x = normal(rng) * std::sqrt(hidden * 1.0f) / 4.0f;
  return v;
}

void FillStates(std::mt19937_64& rng, const DemoDataOptions& o,
                const std::vector<int>& group, int num_groups, int states,
                int hidden, std::vector<float>* out) {
  const std::vector<float> dirs = Directions(rng, num_groups, states, hidden);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int n = static_cast<int>(group.size());
  out->assign(static_cast<size_t>(n) * states * hidden, 0.0f);
  std::vector<float> identity(hidden);
  for (int i = 0; i < n; ++i) {
    for (float& x : identity) x = normal(rng) * 0.5f;
    for (int s = 0; s < states; ++s) {
      // Deeper states carry more of the cluster signal.
      const float strength =
          o.signal * (0.25f + 0.75f * s / std::max(1, states - 1));
      const float* dir = &dirs[(static_cast<size_t>(group[i]) * states + s) * hidden];
      float* row = &(*out)[(static_cast<size_t>(i) * states + s) * hidden];
      for (int d = 0; d < hidden; ++d) {
        row[d] = strength * dir[d] * 4.0f + identity[d] + o.noise * 0.5f * normal(rng);
      }
    }
  }
}

}  // namespace

DemoData GenerateDemoData(const DemoDataOptions& o) {
  std::mt19937_64 rng(o.seed);
  DemoData data;
  const int clusters = o.num_categories * o.num_styles;
  std::vector<std::vector<int>> members(clusters);
  std::vector<double> weight(o.num_items);
  for (int i = 0; i < o.num_items; ++i) {
    const int c = i % clusters;  // balanced clusters
    const int a = c / o.num_styles, b = c % o.num_styles;
    data.item_keys.push_back(absl::StrFormat("SYN%05d", i));
    data.category.push_back(a);
    data.style.push_back(b);
    data.titles.push_back(absl::StrCat(kAdjectives[b % 16], " ", kNouns[a % 16],
                                       " #", i));
    members[c].push_back(i);
  }
  // Zipf-like popularity inside each cluster, by a random rank.
  for (auto& m : members) {
    std::vector<int> order = m;
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t r = 0; r < order.size(); ++r) weight[order[r]] = 1.0 / std::pow(r + 1.0, 0.8);
  }
  std::vector<std::discrete_distribution<int>> pick;
  for (const auto& m : members) {
    std::vector<double> w;
    for (int i : m) w.push_back(weight[i]);
    pick.emplace_back(w.begin(), w.end());
  }
  std::uniform_int_distribution<int> any_cluster(0, clusters - 1);
  std::uniform_int_distribution<int> length(o.min_sequence_length, o.max_sequence_length);
  std::bernoulli_distribution stay(o.stay_probability);
  for (int u = 0; u < o.num_users; ++u) {
    data.user_keys.push_back(absl::StrFormat("U%05d", u));
    const int home = any_cluster(rng);
    const int len = length(rng);
    std::vector<std::string> seq;
    for (int t = 0; t < len; ++t) {
      const int c = stay(rng) ? home : any_cluster(rng);
      seq.push_back(data.item_keys[members[c][pick[c](rng)]]);
    }
    data.sequences.push_back(std::move(seq));
  }
  FillStates(rng, o, data.category, o.num_categories, o.text_states, o.text_hidden,
             &data.text_states);
  FillStates(rng, o, data.style, o.num_styles, o.image_states, o.image_hidden,
             &data.image_states);
  return data;
}

absl::Status WriteDemoData(const DemoData& data, const DemoDataOptions& o,
                           const std::string& out_dir) {
  RETURN_IF_ERROR(CreateDirectories(out_dir));
  std::string items, users;
  for (size_t i = 0; i < data.item_keys.size(); ++i) {
    absl::StrAppend(&items, data.item_keys[i], "\t", data.titles[i], "\n");
  }
  for (size_t u = 0; u < data.user_keys.size(); ++u) {
    absl::StrAppend(&users, data.user_keys[u], "\t");
    for (size_t t = 0; t < data.sequences[u].size(); ++t) {
      absl::StrAppend(&users, t ? " " : "", data.sequences[u][t]);
    }
    absl::StrAppend(&users, "\n");
  }
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(out_dir, "items.tsv"), items));
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(out_dir, "users.tsv"), users));
  const std::string cfg = absl::StrFormat(
      "{\"generator\":\"recsys demo_data\",\"seed\":%d,\"categories\":%d,"
      "\"styles\":%d}",
      o.seed, o.num_categories, o.num_styles);
  HiddenStateCacheInfo text;
  text.modality = "text";
  text.backbone = absl::StrFormat("synthetic-text-%dx%d", o.text_states - 1, o.text_hidden);
  text.backbone_config = cfg;
  text.fingerprint = absl::StrFormat("demo-%d", o.seed);
  // The states are drawn at random, not computed from any content: no
  // backbone can encode a new item like them, and the caches carry no
  // content fingerprints (a refresh treats every item as unknown).
  text.backbone_fingerprint = absl::StrFormat("synthetic-demo-%d-text", o.seed);
  text.standin = true;
  HiddenStateCacheInfo image = text;
  image.modality = "image";
  image.backbone = absl::StrFormat("synthetic-image-%dx%d", o.image_states - 1, o.image_hidden);
  image.backbone_fingerprint = absl::StrFormat("synthetic-demo-%d-image", o.seed);
  RETURN_IF_ERROR(WriteHiddenStateCache(JoinPath(out_dir, "text_states.safetensors"),
                                        data.item_keys, data.text_states.data(),
                                        o.text_states, o.text_hidden, o.dtype, text));
  return WriteHiddenStateCache(JoinPath(out_dir, "image_states.safetensors"),
                               data.item_keys, data.image_states.data(),
                               o.image_states, o.image_hidden, o.dtype, image);
}

}  // namespace recsys
