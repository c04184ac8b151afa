#include "trainer/training/loss_scaler.h"

#include <algorithm>

namespace recsys {

DynamicLossScaler::DynamicLossScaler(const Options& options)
    : options_(options), scale_(options.initial_scale) {
  TORCH_CHECK(options.initial_scale > 0 && options.growth_factor >= 1 &&
                  options.backoff_factor > 0 && options.backoff_factor < 1 &&
                  options.growth_interval >= 1,
              "loss scaler: initial_scale > 0, growth_factor >= 1, 0 < backoff_factor < 1 "
              "and growth_interval >= 1 expected");
}

torch::Tensor DynamicLossScaler::Scale(const torch::Tensor& loss) const {
  return loss * scale_;
}

bool DynamicLossScaler::UnscaleAndUpdate(const std::vector<torch::Tensor>& grads) {
  torch::NoGradGuard no_grad;
  bool finite = true;
  const double inv = 1.0 / scale_;
  for (const torch::Tensor& g : grads) {
    if (!g.defined()) continue;
    g.mul_(inv);
    // One reduction per buffer: NaN and Inf both fail isfinite.
    if (finite && !torch::isfinite(g).all().item<bool>()) finite = false;
  }
  Update(!finite);
  return finite;
}

void DynamicLossScaler::Update(bool found_non_finite) {
  if (found_non_finite) {
    scale_ = std::max(options_.min_scale, scale_ * options_.backoff_factor);
    clean_ = 0;
    ++skipped_;
    return;
  }
  if (++clean_ >= options_.growth_interval) {
    scale_ = std::min(options_.max_scale, scale_ * options_.growth_factor);
    clean_ = 0;
  }
}

}  // namespace recsys
