// UserEncoderKernel: the serving form of the SASRec user encoder
// (model/nn/user_encoder.h), its last position only, on plain float arrays:
// the matmuls go to OpenBLAS sgemm directly, LayerNorm, attention and GELU
// are loops over preallocated scratch.
//
// Why: at the batch sizes the server runs (1-32 users, window 10, d 64) the
// LibTorch forward spent more CPU in per-op dispatch, tensor allocation and
// frees than in its sgemms (perf at 32 clients: libtorch_cpu + c10 + malloc
// ~30% of the server, OpenBLAS ~13%). The arithmetic is the module's:
// UserEncoderImpl::ForwardLast in eval mode (no dropout), equal to it up to
// float rounding (user_encoder_kernel_test pins it).
//
// Thread-safety: immutable after Create; ForwardLast may run concurrently
// (each thread keeps its own scratch). Owns copies of the weights.
#ifndef RECSYS_SERVER_USER_ENCODER_KERNEL_H_
#define RECSYS_SERVER_USER_ENCODER_KERNEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace recsys {

class UserEncoderImpl;

class UserEncoderKernel {
 public:
  // Copies the weights of `encoder` (any mode: the kernel has no dropout).
  // Fails when a parameter it needs is missing or has the wrong shape.
  static absl::StatusOr<std::unique_ptr<UserEncoderKernel>> Create(
      const UserEncoderImpl& encoder);

  // items: [b, max_len, dim] row-major item embeddings, left-padded (the
  // newest item at max_len - 1); valid: [b, max_len], nonzero for items.
  // out: [b, dim], what UserEncoderImpl::ForwardLast returns.
  // REQUIRES: b >= 1.
  void ForwardLast(const float* items, const uint8_t* valid, int64_t b, float* out) const;

  int64_t dim() const { return dim_; }
  int64_t max_len() const { return max_len_; }

 private:
  struct Linear {
    std::vector<float> weight;  // [out, in], as torch::nn::Linear
    std::vector<float> bias;    // [out]
    int64_t in = 0, out = 0;
  };
  struct Norm {
    std::vector<float> weight, bias;  // [dim]
  };
  struct Block {
    Linear qkv, out, ffn1, ffn2;
    Norm ln1, ln2;
  };
  struct Scratch;

  UserEncoderKernel() = default;
  void Attention(const float* q, int64_t q_stride, const float* kv, int64_t kv_stride,
                 int64_t first_query, int64_t queries, float* ctx) const;

  int64_t dim_ = 0, heads_ = 0, ffn_dim_ = 0, max_len_ = 0;
  std::vector<float> positions_;  // [max_len, dim]
  Norm ln_in_;
  std::vector<Block> blocks_;
  Linear last_q_, last_kv_;  // the last block's qkv split: query; keys and values
};

}  // namespace recsys

#endif  // RECSYS_SERVER_USER_ENCODER_KERNEL_H_
