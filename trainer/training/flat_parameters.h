// One contiguous buffer behind many small parameter tensors, so the
// optimizer updates a whole parameter group in a handful of kernels instead
// of ~10 per tensor (the IISAN + user-encoder model has ~50 tensors, most
// of them a few hundred values: per-tensor Adam was dispatch overhead).
//
// After FlattenParameters(params), each tensor of `params` is a view of the
// returned buffer (same values, same names and shapes for the module and its
// checkpoints), and its gradient a view of the buffer's gradient, which
// stays allocated: backward accumulates into it in place. Give the optimizer
// the returned tensor instead of `params`. Adam's update is elementwise, so
// updating the buffer gives bit-for-bit the weights of updating the tensors
// one by one (flat_parameters_test).
//
// REQUIRES: every tensor defined, of one dtype and device, requires_grad,
// and none of them a view or sharing storage with another. Call after the
// module has been moved to its device; moving it again breaks the views.
// Thread-safety: as the tensors.
#ifndef RECSYS_TRAINER_TRAINING_FLAT_PARAMETERS_H_
#define RECSYS_TRAINER_TRAINING_FLAT_PARAMETERS_H_

#include <vector>

#include <torch/torch.h>

namespace recsys {

// Throws c10::Error (TORCH_CHECK) when the REQUIRES above do not hold.
torch::Tensor FlattenParameters(const std::vector<torch::Tensor>& params);

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_FLAT_PARAMETERS_H_
