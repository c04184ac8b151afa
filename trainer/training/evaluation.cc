#include "trainer/training/evaluation.h"

#include <algorithm>
#include <cmath>

namespace recsys {

std::vector<TargetRank> RankTargets(const torch::Tensor& scores,
                                    const std::vector<int64_t>& targets,
                                    const std::vector<std::vector<int32_t>>& histories) {
  const int64_t b = scores.size(0);
  TORCH_CHECK(static_cast<int64_t>(targets.size()) == b &&
                  static_cast<int64_t>(histories.size()) == b,
              "one target and one history per row");
  const auto dev = scores.device();
  const torch::Tensor s = scores.to(torch::kFloat);  // no copy when already float
  // NaN and Inf propagate through max / min: two reductions, no [B, N] copy.
  TORCH_CHECK(std::isfinite(s.max().item<float>()) && std::isfinite(s.min().item<float>()),
              "ranking: non-finite scores (NaN or Inf): the model's outputs are not usable");
  const auto lopt = torch::TensorOptions().dtype(torch::kLong);
  torch::Tensor t = torch::tensor(targets, lopt).to(dev);
  torch::Tensor target_scores = s.gather(1, t.unsqueeze(1));  // [B, 1]
  torch::Tensor higher = (s > target_scores).sum(1);
  torch::Tensor tied = (s == target_scores).sum(1) - 1;  // the target itself
  // The history (each distinct item once, never the target) is masked: take
  // back what its items contributed instead of copying the scores to mask them.
  std::vector<int64_t> rows, cols;
  for (int64_t i = 0; i < b; ++i) {
    std::vector<int32_t> h = histories[i];
    std::sort(h.begin(), h.end());
    h.erase(std::unique(h.begin(), h.end()), h.end());
    for (int32_t item : h) {
      if (item == targets[i]) continue;
      rows.push_back(i);
      cols.push_back(item);
    }
  }
  if (!rows.empty()) {
    torch::Tensor r = torch::tensor(rows, lopt).to(dev);
    torch::Tensor c = torch::tensor(cols, lopt).to(dev);
    torch::Tensor hs = s.index({r, c});
    torch::Tensor ts = target_scores.squeeze(1).index_select(0, r);
    higher.index_add_(0, r, -(hs > ts).to(torch::kLong));
    tied.index_add_(0, r, -(hs == ts).to(torch::kLong));
  }
  torch::Tensor both = torch::stack({higher, tied}, 1).to(torch::kCPU).contiguous();
  const int64_t* p = both.data_ptr<int64_t>();
  std::vector<TargetRank> out(b);
  for (int64_t i = 0; i < b; ++i) out[i] = {p[2 * i], p[2 * i + 1]};
  return out;
}

}  // namespace recsys
