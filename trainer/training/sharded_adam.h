// Adam's update of the trainer's flat parameter buffers (flat_parameters.h)
// in one pass per element range, split over a StepWorkers team (each worker
// updates a range) or on the caller alone.
//
// The formula is torch::optim::Adam::step's (LibTorch 1.13: moments, bias
// corrections, eps added to the corrected root, weight decay folded into
// the gradient), in float, on the optimizer's own state (created as Adam
// creates it on its first step), so epoch checkpoints, which save the
// optimizer, need no change, and a later adam.step() continues from it.
// The results equal step()'s to float rounding, not bit for bit (LibTorch's
// vector loops fuse some multiply-adds; sharded_adam_test bounds the
// difference), and they do not depend on the number of workers: every
// element is computed alone, with the same roundings in the vector lanes
// and the scalar tail. Why not step(): it makes ~8 passes over the buffers
// and allocates two temporaries of their size, ~0.5 ms of a ~10 ms CPU step
// here, and split over two threads it got no faster.
//
// REQUIRES: every parameter with a gradient is a float CPU tensor, like its
// gradient, both contiguous, and no amsgrad (ShardedAdamStep falls back to
// adam.step() otherwise).
// Thread-safety: call from the optimizer's owner, between steps.
#ifndef RECSYS_TRAINER_TRAINING_SHARDED_ADAM_H_
#define RECSYS_TRAINER_TRAINING_SHARDED_ADAM_H_

#include <vector>

#include <torch/torch.h>

#include "trainer/training/step_workers.h"

namespace recsys {

// `workers`: nullptr updates everything on the calling thread. `zero_grad`:
// also zeroes each gradient in the same pass, after reading it (what
// adam.zero_grad() would do next, without another pass over the buffers),
// in place (LibTorch 2's zero_grad() would drop the buffers).
// `more_grads`: per parameter, in param_groups() order (shorter: none for
// the rest), undefined or [rows, numel] contiguous: the gradient used is
// p.grad() + row 0 + row 1 + ... (in that order), and the rows are zeroed
// with it (a split step's other shards' gradients, model/nn/grad_sinks.h).
void ShardedAdamStep(torch::optim::Adam& adam, StepWorkers* workers, bool zero_grad = false,
                     const std::vector<torch::Tensor>& more_grads = {});

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_SHARDED_ADAM_H_
