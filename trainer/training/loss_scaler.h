// Dynamic loss scaling for fp16 mixed-precision training (CUDA without
// bf16): fp16 gradients below ~6e-8 flush to zero, so the loss is multiplied
// by a large scale before backward, the gradients divided by it before the
// optimizer step, and the scale adapted: a step whose gradients hold an Inf
// or NaN (the scale overflowed fp16) is skipped and the scale backs off;
// after `growth_interval` clean steps in a row it grows again. (The scheme of
// mixed-precision training as published by Micikevicius et al., 2018.)
//
// bf16 has fp32's exponent range and needs none of this; fp32 neither.
//
//   DynamicLossScaler scaler;
//   scaler.Scale(loss).backward();
//   if (scaler.UnscaleAndUpdate(grads)) optimizer.step();  // else: skipped
//
// Thread-safety: not thread-safe; one per training loop.
#ifndef RECSYS_TRAINER_TRAINING_LOSS_SCALER_H_
#define RECSYS_TRAINER_TRAINING_LOSS_SCALER_H_

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace recsys {

class DynamicLossScaler {
 public:
  struct Options {
    double initial_scale = 65536.0;  // 2^16
    double growth_factor = 2.0;
    double backoff_factor = 0.5;
    int64_t growth_interval = 2000;  // clean steps before the scale grows
    double min_scale = 1.0;          // backoff never goes below
    double max_scale = 16777216.0;   // 2^24: growth stops here
  };
  DynamicLossScaler() : DynamicLossScaler(Options()) {}
  explicit DynamicLossScaler(const Options& options);

  double scale() const { return scale_; }
  int64_t skipped_steps() const { return skipped_; }
  int64_t clean_steps_in_a_row() const { return clean_; }

  // loss * scale (the loss itself is never modified).
  torch::Tensor Scale(const torch::Tensor& loss) const;

  // Divides every defined gradient by the scale in place (fp32 math) and
  // checks them: true when all are finite, i.e. the optimizer should step.
  // Then updates the scale: a non-finite gradient backs off (and counts a
  // skipped step), a clean one counts towards growth.
  bool UnscaleAndUpdate(const std::vector<torch::Tensor>& grads);

  // The update alone (UnscaleAndUpdate calls it): `found_non_finite` as the
  // step's gradients had.
  void Update(bool found_non_finite);

 private:
  Options options_;
  double scale_;
  int64_t clean_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_LOSS_SCALER_H_
