// The training form of IISAN's intra-modal path (IntraModalPathImpl in
// side_network.h) as a single autograd node with a hand-written backward,
// for float CPU tensors:
//   x_i = g_i * h[:, i] + (1 - g_i) * s_{i-1},  g_i = sigmoid(w_i / T), s_0 = 0
//   s_i = up_i(relu(down_i(x_i))) + x_i;        returns s_K
//
// Why: a training step sends ~280 items through K side blocks. Through
// LibTorch's ops each block is ~12 ops forward (the gate's sigmoid and
// mixing, two linears, relu, residual) and as many autograd nodes backward,
// each costing more in dispatch and allocation than its arithmetic at these
// sizes, and that cost does not shrink when a step's items are split over
// two threads (each half still pays all of it). Here a block is one
// mixing loop and two addmm forward, four mm and a dot backward.
//
// The arithmetic is the module's (fused_intra_path_test pins outputs and
// every gradient against it). Thread-safety: pure functions of their
// inputs; item chunks may run concurrently.
#ifndef RECSYS_MODEL_NN_FUSED_INTRA_PATH_H_
#define RECSYS_MODEL_NN_FUSED_INTRA_PATH_H_

#include <vector>

#include <torch/torch.h>

namespace recsys {

// One side block's parameters as the path's modules hold them.
struct FusedSideBlock {
  torch::Tensor gate_weight;             // [1]
  double temperature = 0.1;              // the gate's (GateOptions), > 0
  torch::Tensor down_weight, down_bias;  // [B, D], [B]
  torch::Tensor up_weight, up_bias;      // [D, B], [D]
};

// Whether FusedIntraPathForward takes these: h a float CPU [U, K, D] tensor
// with K == blocks.size() >= 1, every parameter float CPU.
bool FusedIntraPathApplies(const torch::Tensor& h, const std::vector<FusedSideBlock>& blocks);

// IntraModalPathImpl::forward(h): [U, K, D] -> [U, D]. Gradients flow to
// every parameter and, when it requires them, to h.
// REQUIRES: FusedIntraPathApplies(h, blocks); every temperature > 0.
torch::Tensor FusedIntraPathForward(const torch::Tensor& h,
                                    const std::vector<FusedSideBlock>& blocks);

}  // namespace recsys

#endif  // RECSYS_MODEL_NN_FUSED_INTRA_PATH_H_
