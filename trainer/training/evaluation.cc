#include "trainer/training/evaluation.h"

#include <limits>

namespace recsys {

std::vector<TargetRank> RankTargets(const torch::Tensor& scores,
                                    const std::vector<int64_t>& targets,
                                    const std::vector<std::vector<int32_t>>& histories) {
  const int64_t b = scores.size(0);
  TORCH_CHECK(static_cast<int64_t>(targets.size()) == b &&
                  static_cast<int64_t>(histories.size()) == b,
              "one target and one history per row");
  const auto dev = scores.device();
  torch::Tensor s = scores.to(torch::kFloat).clone();
  TORCH_CHECK(torch::isfinite(s).all().item<bool>(),
              "ranking: ", (~torch::isfinite(s)).sum().item<int64_t>(),
              " non-finite scores (NaN or Inf): the model's outputs are not usable");
  std::vector<int64_t> rows, cols;
  for (int64_t i = 0; i < b; ++i) {
    for (int32_t item : histories[i]) {
      if (item == targets[i]) continue;
      rows.push_back(i);
      cols.push_back(item);
    }
  }
  const auto lopt = torch::TensorOptions().dtype(torch::kLong);
  if (!rows.empty()) {
    torch::Tensor r = torch::tensor(rows, lopt).to(dev);
    torch::Tensor c = torch::tensor(cols, lopt).to(dev);
    s.index_put_({r, c}, -std::numeric_limits<float>::infinity());
  }
  torch::Tensor t = torch::tensor(targets, lopt).to(dev);
  torch::Tensor target_scores = s.gather(1, t.unsqueeze(1));
  torch::Tensor higher = (s > target_scores).sum(1);
  torch::Tensor tied = (s == target_scores).sum(1) - 1;  // the target itself
  torch::Tensor both = torch::stack({higher, tied}, 1).to(torch::kCPU).contiguous();
  const int64_t* p = both.data_ptr<int64_t>();
  std::vector<TargetRank> out(b);
  for (int64_t i = 0; i < b; ++i) out[i] = {p[2 * i], p[2 * i + 1]};
  return out;
}

}  // namespace recsys
