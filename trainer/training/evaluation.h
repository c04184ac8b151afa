// Full-ranking evaluation: the rank of each example's target among all items,
// with the user's history masked out (history items can never outrank the
// target; the target itself is never masked).
#ifndef RECSYS_TRAINER_TRAIN_EVALUATION_H_
#define RECSYS_TRAINER_TRAIN_EVALUATION_H_

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace recsys {

// scores: [B, N] (any device); targets[b] in [0, N); histories[b]: item ids
// to mask. Returns the 0-based rank of each target: the number of unmasked
// items scoring strictly higher (ties favour the target).
std::vector<int64_t> RankTargets(const torch::Tensor& scores,
                                 const std::vector<int64_t>& targets,
                                 const std::vector<std::vector<int32_t>>& histories);

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAIN_EVALUATION_H_
