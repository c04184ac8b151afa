// In-batch softmax loss with log-popularity correction.
//
// For N training positions with query vectors q_n and C candidate items (the
// distinct target items of the batch) with embeddings e_c:
//   logit[n, c] = q_n . e_c - log p(c)        (when log_prior is given)
//   logit[n, c] = -inf   where excluded[n, c] and c != target_n
//                        (the user's own items are not negatives)
//                        (or logit[n, c] += mask[n, c], the additive form)
//   loss = mean_n -log softmax(logit[n])[target_n]   (`sum`: the sum over n)
// Computed in float32 whatever the input dtype (autocast-safe).
#ifndef RECSYS_TRAINER_TRAIN_LOSS_H_
#define RECSYS_TRAINER_TRAIN_LOSS_H_

#include <cstdint>

#include <torch/torch.h>

namespace recsys {

// queries [N, d], candidates [C, d], targets [N] int64 in [0, C),
// log_prior [C] or undefined, excluded [N, C] bool, or its additive form
// (ExclusionMaskRow, float [N, C]), or undefined.
torch::Tensor InBatchSoftmaxLoss(const torch::Tensor& queries,
                                 const torch::Tensor& candidates,
                                 const torch::Tensor& targets,
                                 const torch::Tensor& log_prior,
                                 const torch::Tensor& excluded, bool sum = false);

// Row n of `excluded`'s additive form, for a caller that builds it ahead
// (the trainer, on its batch thread): out[c] = -inf where excluded[c] != 0
// and c != target, else 0; `excluded` and `out` hold `c_count` entries.
// Adding it gives the masked logits bit for bit (x + 0 = x, x + -inf = -inf)
// and the same gradient (0 where masked: the softmax of -inf is 0), in one
// op instead of the four that build the mask and the two that apply it.
void ExclusionMaskRow(const uint8_t* excluded, int64_t c_count, int64_t target, float* out);

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAIN_LOSS_H_
