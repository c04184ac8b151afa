// SASRec-style sequential user encoder: learned positions, post-LN
// transformer blocks with causal self-attention, padding masked.
//
// Sequences are left-padded to max_len so the most recent item always sits at
// position max_len - 1. A position attends to itself and to earlier valid
// positions; padded positions never influence valid ones (their own outputs
// are finite and meaningless).
#ifndef RECSYS_MODEL_NN_USER_ENCODER_H_
#define RECSYS_MODEL_NN_USER_ENCODER_H_

#include <cstdint>

#include <torch/torch.h>

#include "model/nn/keyed_dropout.h"

namespace recsys {

struct UserEncoderOptions {
  TORCH_ARG(int64_t, dim) = 64;
  TORCH_ARG(int64_t, num_heads) = 2;
  TORCH_ARG(int64_t, num_layers) = 2;
  TORCH_ARG(int64_t, ffn_dim) = 256;
  TORCH_ARG(int64_t, max_len) = 10;
  TORCH_ARG(double, dropout) = 0.1;
  // Training with keyed dropout on float CPU tensors runs each block as one
  // autograd node with a hand-written backward (fused_block.h): the same
  // math, fewer and larger ops. false: the blocks' LibTorch ops.
  TORCH_ARG(bool, fused_cpu_training) = true;
};

// One post-LN block: x = LN(x + Attn(x)); x = LN(x + FFN(x)).
class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(const UserEncoderOptions& options);
  // x: [B, L, D]; allowed: [B, L, L] bool (query, key). With `dropout`
  // (training), the block's four dropouts are keyed (keyed_dropout.h) at
  // sites dropout->Site(0..3) instead of drawing from the global generator;
  // on float CPU tensors that is FusedBlockForward unless the options'
  // fused_cpu_training is off.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& allowed,
                        const DropoutKey* dropout = nullptr);
  // forward(x, allowed)[:, L - 1] without the other positions' outputs: the
  // query, attention, out-projection, LNs and FFN of the last position only,
  // over keys and values of all L. allowed_last: [B, L] bool, what the last
  // position may attend to (allowed[:, L - 1]). Returns [B, D].
  torch::Tensor ForwardLast(const torch::Tensor& x, const torch::Tensor& allowed_last);

 private:
  UserEncoderOptions options_;
  torch::nn::Linear qkv_{nullptr}, out_{nullptr}, ffn1_{nullptr}, ffn2_{nullptr};
  torch::nn::LayerNorm ln1_{nullptr}, ln2_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(TransformerBlock);

class UserEncoderImpl : public torch::nn::Module {
 public:
  explicit UserEncoderImpl(const UserEncoderOptions& options);
  // items: [B, L, D] item embeddings (L <= max_len, left-padded);
  // valid: [B, L] bool. Returns [B, L, D]; position t encodes items <= t.
  torch::Tensor forward(const torch::Tensor& items, const torch::Tensor& valid);
  // Packed form (training): several sequences share a row of L slots, so
  // short sequences do not pay for max_len positions each.
  // positions: [R, L] int64, the position index of each slot (a sequence of
  // n items takes positions max_len - n .. max_len - 1, as when left-padded);
  // allowed: [R, L, L] bool, query slot q may attend to key slot k (the
  // earlier slots of its own sequence and itself; an empty slot: itself);
  // valid: [R, L] bool. Each sequence's outputs equal forward() on it alone,
  // left-padded (up to rounding; in training, dropout draws differ).
  // With `dropout` (training), the masks are keyed by row (keyed_dropout.h):
  // rows [a, b) of a batch, run alone with first_row = a, get the masks the
  // whole batch gives those rows, so a step can be split into row shards.
  torch::Tensor ForwardPacked(const torch::Tensor& items, const torch::Tensor& valid,
                              const torch::Tensor& positions, const torch::Tensor& allowed,
                              const DropoutKey* dropout = nullptr);
  const UserEncoderOptions& options() const { return options_; }
  // forward(items, valid)[:, L - 1] for inference (serving, evaluation):
  // earlier blocks as in forward, the last block for the last position only
  // (38% fewer multiply-adds than forward at max_len 10, 2 layers, d 64, FFN
  // 256). Returns [B, D]; equal to forward's last position up to float
  // rounding (a few ulps: the last block's matmuls have fewer rows).
  torch::Tensor ForwardLast(const torch::Tensor& items, const torch::Tensor& valid);

 private:
  // forward's and ForwardLast's input: checks the shapes, adds the
  // positions of a left-padded window of L, LayerNorm and dropout, padded
  // rows zeroed.
  torch::Tensor EmbedLeftPadded(const torch::Tensor& items, const torch::Tensor& valid);
  // [B, L, L]: query q may attend to key k iff k <= q and (k valid or k == q).
  static torch::Tensor CausalAllowed(const torch::Tensor& valid);

  UserEncoderOptions options_;
  torch::nn::Embedding positions_{nullptr};
  torch::nn::LayerNorm ln_in_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  std::vector<TransformerBlock> blocks_;
};
TORCH_MODULE(UserEncoder);

}  // namespace recsys

#endif  // RECSYS_MODEL_NN_USER_ENCODER_H_
