// Dropout whose mask is a pure function of (key, element), not of a shared
// random generator's position.
//
// Why: a training step split into row shards that run on several threads
// (trainer/training/trainer.cc) must draw the same masks whatever the shard
// boundaries, the thread count or the scheduling order; draws from one
// generator would follow whichever thread got there first. Here element i of
// row r (rows along dim 0, `first_row` the global index of the tensor's row
// 0) keeps its value with probability 1 - p, decided by a SplitMix64 hash of
// (key, r * row_size + i). A shard of rows [a, b) called with first_row = a
// gets exactly the rows a..b-1 of the mask the whole tensor would get.
//
// The mask is made on the CPU (a loop over the elements, ~1 ns each) and
// moved to x's device; GPU training keeps LibTorch's own dropout.
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

}  // namespace recsys

#endif  // RECSYS_MODEL_NN_KEYED_DROPOUT_H_
