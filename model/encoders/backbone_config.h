// Architecture settings of the BERT and ViT backbones, read from a Hugging
// Face `config.json` (or filled from flags) and written back as the JSON
// that goes into cache metadata. No LibTorch here.
//
// Thread-safety: plain values.
#ifndef RECSYS_MODEL_ENCODERS_BACKBONE_CONFIG_H_
#define RECSYS_MODEL_ENCODERS_BACKBONE_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys {

// Defaults are bert-base-uncased.
struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;

  // INVALID_ARGUMENT naming the field when a size is < 1, hidden_size is
  // not a multiple of num_attention_heads, or eps <= 0.
  absl::Status Validate() const;
  std::string ToJson() const;
};

// Defaults are google/vit-base-patch16-224.
struct ViTConfig {
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t image_size = 224;
  int64_t patch_size = 16;
  int64_t num_channels = 3;
  double layer_norm_eps = 1e-12;
  // Preprocessing (preprocessor_config.json: image_mean / image_std).
  std::vector<float> image_mean = {0.5f, 0.5f, 0.5f};
  std::vector<float> image_std = {0.5f, 0.5f, 0.5f};

  // As BertConfig, plus image_size a multiple of patch_size and mean/std
  // with num_channels entries (std > 0).
  absl::Status Validate() const;
  std::string ToJson() const;
};

// Parses HF config.json text. Absent fields keep the defaults above;
// hidden_act must be "gelu" when present (the only activation implemented).
// INVALID_ARGUMENT for malformed JSON, wrong types or a failed Validate().
absl::StatusOr<BertConfig> ParseBertConfig(absl::string_view json_text);
absl::StatusOr<ViTConfig> ParseViTConfig(absl::string_view json_text);

// The config.json to read: `config_path` when given, else the config.json
// beside `weights_path` when it exists (as HF checkpoints are laid out),
// else "" (use the flag/default config).
std::string ResolveConfigPath(const std::string& config_path,
                              const std::string& weights_path);

// The config to build with: parsed from ResolveConfigPath(config_path,
// weights_path) when that names a file, else `fallback`; then validated.
absl::StatusOr<BertConfig> LoadBertConfig(const BertConfig& fallback,
                                          const std::string& config_path,
                                          const std::string& weights_path);
absl::StatusOr<ViTConfig> LoadViTConfig(const ViTConfig& fallback,
                                        const std::string& config_path,
                                        const std::string& weights_path);

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_BACKBONE_CONFIG_H_
