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
  if (excluded.defined() && excluded.scalar_type() != torch::kBool) {
    TORCH_CHECK(excluded.sizes() == logits.sizes(), "the additive exclusion mask must be ",
                logits.sizes(), ", got ", excluded.sizes());
    logits = logits + excluded;
  } else if (excluded.defined()) {
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

void ExclusionMaskRow(const uint8_t* excluded, int64_t c_count, int64_t target, float* out) {
  constexpr float kMasked = -std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < c_count; ++c) out[c] = excluded[c] != 0 ? kMasked : 0.0f;
  if (target >= 0 && target < c_count) out[target] = 0.0f;
}

}  // namespace recsys
