// Bounds on the size of one training step, checked before a run starts (by
// the Trainer, and by the Trainer service at submit). Each setting within
// its own range can still ask for a step no machine holds: batch_size 65536
// with max_len 10 is 655,360 positions a step, whose in-batch logits against
// Scientific's 20,825 items alone are 13.6 billion floats (54 GB), and the
// job worker allocated until the kernel killed it.
//
// LibTorch-free, so that the service refuses such a job with the same code.
//
// Thread-safety: a pure function.
#ifndef RECSYS_TRAINER_TRAINING_STEP_SIZE_H_
#define RECSYS_TRAINER_TRAINING_STEP_SIZE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace recsys {

struct StepSize {
  int64_t batch_size = 0;  // training windows a step
  int64_t max_len = 0;     // positions a window
  int64_t embedding_dim = 0;
  int64_t ffn_dim = 0;
  int64_t num_heads = 0;
  int64_t num_items = 0;   // the catalog: an upper bound on a step's candidates
};

// The most elements one of a step's tensors may have: 2^28 floats (1 GiB).
inline constexpr int64_t kMaxStepTensorElements = int64_t{1} << 28;

// OK when every tensor of a step stays within kMaxStepTensorElements: the
// encoder's activations (positions x max(ffn_dim, 3 x embedding_dim)), its
// attention scores (batch_size x num_heads x max_len^2) and the loss's
// logits (positions x min(positions, num_items) candidates), positions being
// batch_size x max_len. Otherwise INVALID_ARGUMENT naming
// `field_prefix` + "batch_size" and the tensor that would not fit.
// REQUIRES: every field >= 1 (the callers' own range checks).
absl::Status CheckStepSize(const StepSize& s, const std::string& field_prefix);

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_STEP_SIZE_H_
