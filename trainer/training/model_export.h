// Writes a model version directory for the retrieval sidecar and the
// recommendation server. The directory is complete or absent: it is written
// under a temporary name next to its final place, every file fsynced, then
// renamed (common/file_util.h).
//
// <base_dir>/<version>/
//   manifest.json                {format, version, created_at, model, config,
//                                 data_fingerprint, metrics, dims: {embedding,
//                                 max_len}, item_count, files: {name:
//                                 {bytes, crc32c}}}
//   model.safetensors            every weight (checkpoint format)
//   user_encoder.safetensors     the user-encoder weights ("user_encoder.*")
//   item_keys.txt                one key per line, row order of the embeddings
//   item_embeddings.safetensors  "embeddings" F32 [num_items, d], plus the
//                                keys as "key_bytes" U8 / "key_offsets" I64
//                                (the hidden-state cache's key layout)
#ifndef RECSYS_TRAINER_TRAINING_MODEL_EXPORT_H_
#define RECSYS_TRAINER_TRAINING_MODEL_EXPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/training/checkpoint.h"

namespace recsys {

inline constexpr char kModelVersionFormat[] = "recsys.model_version.v1";

struct ModelVersion {
  std::string version;           // directory name: the decimal version, e.g. "3"
  std::string model;             // "iisan" | "sasrec"
  std::string config_json;       // training configuration
  std::string data_fingerprint;  // Fingerprint(InteractionData)
  std::string metrics_json;      // validation / test metrics
  int64_t max_len = 10;
  std::vector<std::string> item_keys;
  int64_t embedding_dim = 0;
  std::vector<float> item_embeddings;  // [item_keys.size() * embedding_dim]
  std::vector<NamedTensor> weights;    // all model parameters
};

// One more than the largest version directory (decimal name) in `base_dir`;
// 1 when there is none or `base_dir` does not exist.
absl::StatusOr<int64_t> NextModelVersion(const std::string& base_dir);

// Returns the final directory path. ALREADY_EXISTS when the version exists;
// INVALID_ARGUMENT for mismatched sizes or an unsafe version name.
absl::StatusOr<std::string> ExportModelVersion(const std::string& base_dir,
                                               const ModelVersion& version);

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_MODEL_EXPORT_H_
