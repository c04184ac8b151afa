#include "trainer/training/loss.h"

#include <limits>

namespace recsys {

torch::Tensor InBatchSoftmaxLoss(const torch::Tensor& queries,
                                 const torch::Tensor& candidates,
                                 const torch::Tensor& targets,
                                 const torch::Tensor& log_prior,
                                 const torch::Tensor& excluded, bool sum) {
  TORCH_CHECK(queries.dim() == 2 && candidates.dim() == 2 &&
                  queries.size(1) == candidates.size(1),
              "queries [N, d] and candidates [C, d] expected, got ",
              queries.sizes(), " and ", candidates.sizes());
  torch::Tensor logits =
      torch::matmul(queries, candidates.t()).to(torch::kFloat);
  if (log_prior.defined()) logits = logits - log_prior.to(torch::kFloat).unsqueeze(0);
  if (excluded.defined()) {
    torch::Tensor is_target =
        torch::zeros_like(excluded).scatter_(1, targets.unsqueeze(1), true);
    logits = logits.masked_fill(excluded & is_target.logical_not(),
                                -std::numeric_limits<float>::infinity());
  }
  if (sum) {
    return torch::nn::functional::cross_entropy(
        logits, targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  }
  return torch::nn::functional::cross_entropy(logits, targets);
}

}  // namespace recsys
