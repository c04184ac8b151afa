// The shape of the networks a model version holds, as one LibTorch-free
// struct with its JSON form: the trainer builds its networks from it and
// writes it into the version's manifest ("config"); the server and the
// embedding refresh rebuild the same networks from it. Parsing is strict:
// every field the networks need must be present and in range, so no reader
// carries fallback literals that could silently disagree with the writer.
//
// JSON keys (flat, inside the manifest's "config" object, next to the
// training settings that only the trainer reads):
//   model            "iisan" | "sasrec"
//   num_items        rows of the ID table (sasrec) / catalog size
//   embedding_dim    d of items and users
//   max_len          user-encoder input length
//   num_heads, num_layers, ffn_dim, dropout     the user encoder
//   bottleneck, inter_path, modalities          the IISAN item tower
//   modalities[i]    {modality, hidden_size, states: [indices], backbone,
//                     cache_fingerprint, standin, backbone_fingerprint}
//                    backbone_fingerprint: of the frozen backbone whose cache
//                    the version was trained on (hidden_state_cache.h); an
//                    embedding refresh encodes new items only with that
//                    backbone. Absent in versions written before it.
//   standardize_states  whether cached states were standardised
//
// Thread-safety: plain values.
#ifndef RECSYS_MODEL_NN_NETWORK_CONFIG_H_
#define RECSYS_MODEL_NN_NETWORK_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace recsys {

// One modality of the IISAN item tower: which cached states feed its blocks.
struct ModalityConfig {
  std::string modality;           // "text" | "image"
  int64_t hidden_size = 0;        // backbone width
  std::vector<int64_t> states;    // selected state indices, one per block
  std::string backbone;           // the cache's backbone name
  std::string cache_fingerprint;  // the cache's fingerprint
  bool standin = false;           // seeded stand-in weights
  std::string backbone_fingerprint;  // the cache's backbone; empty: not recorded
};

struct NetworkConfig {
  std::string model = "iisan";   // "iisan" | "sasrec"
  int64_t num_items = 0;
  int64_t embedding_dim = 64;
  int64_t max_len = 10;
  int64_t num_heads = 2;
  int64_t num_layers = 2;
  int64_t ffn_dim = 256;
  double dropout = 0.1;          // training only; serving runs without
  int64_t bottleneck = 64;       // iisan
  bool inter_path = true;        // iisan, two modalities
  bool standardize_states = false;
  std::vector<ModalityConfig> modalities;  // iisan; text first
};

// Writes every field into `out` (an object; other keys are kept).
void NetworkConfigToJson(const NetworkConfig& config, nlohmann::json* out);
// INVALID_ARGUMENT naming the first missing or out-of-range field.
absl::StatusOr<NetworkConfig> NetworkConfigFromJson(const nlohmann::json& json);
// The checks NetworkConfigFromJson applies, for configs built in code.
absl::Status ValidateNetworkConfig(const NetworkConfig& config);

}  // namespace recsys

#endif  // RECSYS_MODEL_NN_NETWORK_CONFIG_H_
