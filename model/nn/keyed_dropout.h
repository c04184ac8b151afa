// Dropout whose mask is a pure function of (key, element), not of a shared
// random generator's position.
//
// Why: a training step split into row shards that run on several threads
// (trainer/training/trainer.cc) must draw the same masks whatever the shard
// boundaries, the thread count or the scheduling order; draws from one
// generator would follow whichever thread got there first. Here element i of
// row r (rows along dim 0, `first_row` the global index of the tensor's row
// 0) keeps its value with probability 1 - p (quantised to 1/65536), decided
// by 16 bits of a SplitMix64 hash of (key, g / 4), g = r * row_size + i
// (each hash serves four consecutive elements). A shard of rows [a, b)
// called with first_row = a gets exactly the rows a..b-1 of the mask the
// whole tensor would get.
//
// The mask is made on the CPU (< 1 ns an element; eight hashes at a time
// with AVX-512 DQ, the same bits) and moved to x's device; GPU training
// keeps LibTorch's own dropout.
// Thread-safety: pure functions, safe from any thread.
#ifndef RECSYS_MODEL_NN_KEYED_DROPOUT_H_
#define RECSYS_MODEL_NN_KEYED_DROPOUT_H_

#include <cstdint>

#include <torch/torch.h>

namespace recsys {

// Where a keyed dropout draws from: one key per training step (mixed with a
// site number per dropout call inside a network), and the global index of
// the caller's first row.
struct DropoutKey {
  uint64_t key = 0;
  int64_t first_row = 0;
  // The key of dropout call number `site` within one forward pass.
  DropoutKey Site(uint64_t site) const;
};

// SplitMix64's output function (Steele, Lea, Flood 2014) of `x`.
uint64_t MixBits(uint64_t x);

// x * mask / (1 - p), mask[r, i] = 1 with probability 1 - p as above.
// x: [R, ...] with R >= 0; p in [0, 1). p == 0 returns x.
torch::Tensor KeyedDropout(const torch::Tensor& x, double p, const DropoutKey& key);

// The scale factors KeyedDropout multiplies by, written to mask[0, n): for a
// tensor of n elements in rows of `row_size` (n / size(0)), element i gets
// 1 / (1 - p) when kept, else 0. KeyedDropout(x, p, key) == x * mask.
// REQUIRES: p in [0, 1), row_size >= 1.
void FillKeyedDropoutMask(double p, const DropoutKey& key, int64_t row_size, int64_t n,
                          float* mask);

}  // namespace recsys

#endif  // RECSYS_MODEL_NN_KEYED_DROPOUT_H_
