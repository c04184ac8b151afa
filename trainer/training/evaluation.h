// Full-ranking evaluation: the rank of each example's target among all items,
// with the user's history masked out (history items can never outrank the
// target; the target itself is never masked).
//
// Ties are not resolved in the target's favour: RankTargets reports how many
// unmasked items score strictly higher AND how many score exactly the same,
// and RankingMetrics scores the tie group by the expected HR/NDCG under a
// uniformly random order of the tied items (a model that gives every item the
// same score gets HR@K = K / unmasked items, not 1.0).
//
// LibTorch only (no Abseil): this file also builds on the GPU machine.
#ifndef RECSYS_TRAINER_TRAIN_EVALUATION_H_
#define RECSYS_TRAINER_TRAIN_EVALUATION_H_

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace recsys {

struct TargetRank {
  int64_t higher = 0;  // unmasked items scoring strictly higher than the target
  int64_t tied = 0;    // unmasked items, the target excluded, scoring the same
};

// scores: [B, N] (any device); targets[b] in [0, N); histories[b]: item ids
// to mask. REQUIRES: every score finite (c10::Error otherwise: a NaN compares
// false with everything and would rank first).
std::vector<TargetRank> RankTargets(const torch::Tensor& scores,
                                    const std::vector<int64_t>& targets,
                                    const std::vector<std::vector<int32_t>>& histories);

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAIN_EVALUATION_H_
