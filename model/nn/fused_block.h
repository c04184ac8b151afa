// The training form of one post-LN transformer block of the user encoder
// (TransformerBlockImpl::forward in user_encoder.h, with keyed dropout) as a
// single autograd node with a hand-written backward, for float CPU tensors.
//
// Why: a training step's encoder runs ~26 packed rows of 10 slots at d 64.
// Through LibTorch's ops each block is ~25 small ops forward and ~40 autograd
// nodes backward (views, permutes, the batched 10 x 32 attention products,
// masked_fill, softmax, four dropouts, residual adds), and at these sizes
// their dispatch, allocation and graph bookkeeping cost more than their
// arithmetic. Here the four linear layers are one addmm each (forward) and
// two mm each (backward), LayerNorm and GELU LibTorch's own fused kernels,
// and the attention (scores, mask, softmax, dropout, context) and the
// dropouts plain loops over the block's saved buffers.
//
// The arithmetic is the module's: the same masks (FillKeyedDropoutMask at
// the block's sites 0-3), outputs and gradients equal to the module path up
// to float rounding (fused_block_test pins both).
//
// Thread-safety: pure functions of their inputs; row shards of one batch may
// run forward and backward concurrently (autograd adds their weight
// gradients under its per-variable lock).
#ifndef RECSYS_MODEL_NN_FUSED_BLOCK_H_
#define RECSYS_MODEL_NN_FUSED_BLOCK_H_

#include <cstdint>

#include <torch/torch.h>

#include "model/nn/keyed_dropout.h"

namespace recsys {

// One block's parameters, as the block's torch::nn::Linear / LayerNorm hold
// them (Linear weights [out, in]).
struct FusedBlockWeights {
  torch::Tensor qkv_weight, qkv_bias;    // [3D, D], [3D]: rows q | k | v
  torch::Tensor out_weight, out_bias;    // [D, D], [D]
  torch::Tensor ln1_weight, ln1_bias;    // [D]
  torch::Tensor ffn1_weight, ffn1_bias;  // [F, D], [F]
  torch::Tensor ffn2_weight, ffn2_bias;  // [D, F], [D]
  torch::Tensor ln2_weight, ln2_bias;    // [D]
};

// Whether FusedBlockForward takes these: x a float CPU [R, L, D] tensor, the
// weights float CPU, allowed a bool CPU [R, L, L].
bool FusedBlockApplies(const torch::Tensor& x, const torch::Tensor& allowed,
                       const FusedBlockWeights& w);

// TransformerBlockImpl::forward(x, allowed, &key) in training mode:
// y = LN1(x + drop1(Attn(x))); LN2(y + drop3(FFN2(drop2(gelu(FFN1(y)))))),
// the attention probabilities dropped at site 0. p == 0: no dropout.
// REQUIRES: FusedBlockApplies(x, allowed, w); every query slot allows at
// least one key (UserEncoderImpl's packed masks allow the slot itself);
// D % heads == 0; p in [0, 1).
torch::Tensor FusedBlockForward(const torch::Tensor& x, const torch::Tensor& allowed,
                                const FusedBlockWeights& w, int64_t heads, double p,
                                const DropoutKey& key);

}  // namespace recsys

#endif  // RECSYS_MODEL_NN_FUSED_BLOCK_H_
