// The resumable state of a training run after its last completed epoch:
// the model's parameters, the best epoch's parameters, the optimizer state
// (Adam moments and step counts), the CPU random generator (dropout) and,
// when the model is on a CUDA device, that device's generator too, and the
// loop's counters and per-epoch statistics. Trainer::Train() writes one
// after every epoch when TrainerOptions::resume_dir is set, and continues
// from the newest one it finds there, so a resumed run with the same seed
// ends with the same weights and metrics as an uninterrupted one (shuffling
// is a function of seed and epoch; dropout draws come from the restored
// generator).
//
// Layout: <dir>/epoch-<N>/{params.pt, best.pt, optimizer.pt, rng.pt,
// [rng_cuda.pt,] state.json}, each epoch directory written under a
// temporary name, fsynced and renamed (complete or absent); older epochs are
// removed after the rename.
//
// Includes LibTorch: only the training loop includes this header.
// Thread-safety: none; one run per directory.
#ifndef RECSYS_TRAINER_TRAINING_EPOCH_CHECKPOINT_H_
#define RECSYS_TRAINER_TRAINING_EPOCH_CHECKPOINT_H_

#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace recsys {

struct EpochLoopState {
  int epoch = 0;             // the last completed epoch
  double best_score = -1;
  int since_best = 0;
  double train_seconds = 0;
  std::string results_json;  // the loop's TrainResult so far (trainer.cc's format)
};

absl::Status SaveEpochCheckpoint(const std::string& dir, const EpochLoopState& state,
                                 torch::nn::Module& model,
                                 const std::vector<std::pair<std::string, torch::Tensor>>& best,
                                 torch::optim::Optimizer& optimizer);

// false when `dir` holds no complete epoch checkpoint. Otherwise restores
// everything into the arguments (model and optimizer must be built as the
// saving run built them: INVALID_ARGUMENT otherwise).
absl::StatusOr<bool> LoadEpochCheckpoint(const std::string& dir, EpochLoopState* state,
                                         torch::nn::Module& model,
                                         std::vector<std::pair<std::string, torch::Tensor>>* best,
                                         torch::optim::Optimizer& optimizer);

// The newest complete epoch in `dir` (0: none). Cheap: no tensors are read.
int LastCheckpointedEpoch(const std::string& dir);

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_EPOCH_CHECKPOINT_H_
