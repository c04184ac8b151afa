// In-batch softmax loss with log-popularity correction.
//
// For N training positions with query vectors q_n and C candidate items (the
// distinct target items of the batch) with embeddings e_c:
//   logit[n, c] = q_n . e_c - log p(c)        (when log_prior is given)
//   logit[n, c] = -inf   where excluded[n, c] and c != target_n
//                        (the user's own items are not negatives)
//   loss = mean_n -log softmax(logit[n])[target_n]   (`sum`: the sum over n)
// Computed in float32 whatever the input dtype (autocast-safe).
#ifndef RECSYS_TRAINER_TRAIN_LOSS_H_
#define RECSYS_TRAINER_TRAIN_LOSS_H_

#include <torch/torch.h>

namespace recsys {

// queries [N, d], candidates [C, d], targets [N] int64 in [0, C),
// log_prior [C] or undefined, excluded [N, C] bool or undefined.
torch::Tensor InBatchSoftmaxLoss(const torch::Tensor& queries,
                                 const torch::Tensor& candidates,
                                 const torch::Tensor& targets,
                                 const torch::Tensor& log_prior,
                                 const torch::Tensor& excluded, bool sum = false);

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAIN_LOSS_H_
