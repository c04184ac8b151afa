// Adam's update of the trainer's flat parameter buffers (flat_parameters.h)
// split over a StepWorkers team: each worker updates a range of elements.
//
// The arithmetic is torch::optim::Adam::step's, element by element (LibTorch
// 1.13: moments, bias corrections, eps added to the corrected root, weight
// decay folded into the gradient), on the optimizer's own state (created as
// Adam creates it on its first step), so the result is bit-identical to
// adam.step() (sharded_adam_test checks it) and epoch checkpoints, which
// save the optimizer, need no change. Ranges start at multiples of 64
// elements, so LibTorch's vectorised loops see the same element groups as
// over the whole buffer.
//
// REQUIRES: CPU tensors; every parameter group's parameters have gradients;
// no amsgrad (ShardedAdamStep falls back to adam.step() otherwise).
// Thread-safety: call from the optimizer's owner, between steps.
#ifndef RECSYS_TRAINER_TRAINING_SHARDED_ADAM_H_
#define RECSYS_TRAINER_TRAINING_SHARDED_ADAM_H_

#include <torch/torch.h>

#include "trainer/training/step_workers.h"

namespace recsys {

void ShardedAdamStep(torch::optim::Adam& adam, StepWorkers& workers);

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_SHARDED_ADAM_H_
