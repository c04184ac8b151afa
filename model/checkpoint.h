// Model checkpoints as safetensors: every parameter as an F32 tensor under its
// module path (see model/nn/recommender.h for the names), and the
// training configuration as JSON in the metadata ("config"), with
// "format" = "recsys.recommender_checkpoint.v1". Any safetensors reader can
// load the weights; no LibTorch types appear here.
#ifndef RECSYS_MODEL_CHECKPOINT_H_
#define RECSYS_MODEL_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace recsys {

inline constexpr char kCheckpointFormat[] = "recsys.recommender_checkpoint.v1";

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;  // row-major
};

struct Checkpoint {
  std::vector<NamedTensor> tensors;
  std::string config_json;
};

// Atomic write (temp file, fsync, rename).
absl::Status WriteCheckpoint(const std::string& path, const Checkpoint& checkpoint);
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path);

}  // namespace recsys

#endif  // RECSYS_MODEL_CHECKPOINT_H_
