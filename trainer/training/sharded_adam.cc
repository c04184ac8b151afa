#include "trainer/training/sharded_adam.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace recsys {
namespace {

// The optimizer's state key of `p`: LibTorch 1.13 keys by the TensorImpl
// address printed as text; later versions by the address itself.
template <typename Key>
Key StateKey(const torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;
    os << p.unsafeGetTensorImpl();
    return os.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

// One parameter tensor's update: raw pointers into the parameter, its
// gradient and Adam's moments, and the step's constants in float (as
// LibTorch's kernels cast a double scalar for a float tensor).
struct Slot {
  float* param = nullptr;
  float* grad = nullptr;  // zeroed after it is read when zero_grad
  // More gradients to add to `grad` (in order; zeroed with it): `more`
  // rows of `more_stride` floats, from the slot's offset in each row.
  float* more = nullptr;
  int64_t more_rows = 0, more_stride = 0;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  int64_t numel = 0;
  int64_t offset = 0;  // in the concatenation of every slot
  float beta1 = 0, one_minus_beta1 = 0, beta2 = 0, one_minus_beta2 = 0;
  float eps = 0, weight_decay = 0, bias_correction2_sqrt = 0, neg_step_size = 0;
  bool zero_grad = false;
};

// Adam::step's element formula on elements [from, from + count) of `s`,
// in one pass over the four arrays (step() makes ~8 passes and allocates two
// temporaries the size of the buffer). Four lanes at a time with SSE on
// x86-64, whose adds, multiplies, divisions and square roots round exactly
// as the scalar tail's: an element's result does not depend on where a
// shard boundary falls.
void UpdateRange(const Slot& s, int64_t from, int64_t count) {
  float* p = s.param + from;
  float* g = s.grad + from;
  float* m = s.exp_avg + from;
  float* v = s.exp_avg_sq + from;
  float* more = s.more != nullptr ? s.more + from : nullptr;
  int64_t i = 0;
#if defined(__SSE2__)
  const __m128 beta1 = _mm_set1_ps(s.beta1), c1 = _mm_set1_ps(s.one_minus_beta1);
  const __m128 beta2 = _mm_set1_ps(s.beta2), c2 = _mm_set1_ps(s.one_minus_beta2);
  const __m128 eps = _mm_set1_ps(s.eps), wd = _mm_set1_ps(s.weight_decay);
  const __m128 bc2 = _mm_set1_ps(s.bias_correction2_sqrt), step = _mm_set1_ps(s.neg_step_size);
  const bool decay = s.weight_decay != 0;
  for (; i + 4 <= count; i += 4) {
    const __m128 pi = _mm_loadu_ps(p + i);
    __m128 gi = _mm_loadu_ps(g + i);
    if (s.zero_grad) _mm_storeu_ps(g + i, _mm_setzero_ps());
    for (int64_t r = 0; r < s.more_rows; ++r) {
      float* row = more + r * s.more_stride + i;
      gi = _mm_add_ps(gi, _mm_loadu_ps(row));
      if (s.zero_grad) _mm_storeu_ps(row, _mm_setzero_ps());
    }
    if (decay) gi = _mm_add_ps(gi, _mm_mul_ps(wd, pi));
    const __m128 mi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + i), beta1), _mm_mul_ps(c1, gi));
    const __m128 vi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), beta2),
                                 _mm_mul_ps(_mm_mul_ps(c2, gi), gi));
    const __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), bc2), eps);
    _mm_storeu_ps(m + i, mi);
    _mm_storeu_ps(v + i, vi);
    _mm_storeu_ps(p + i, _mm_add_ps(pi, _mm_div_ps(_mm_mul_ps(step, mi), denom)));
  }
#endif
  for (; i < count; ++i) {
    float gi = g[i];
    if (s.zero_grad) g[i] = 0.0f;
    for (int64_t r = 0; r < s.more_rows; ++r) {
      float* row = more + r * s.more_stride + i;
      gi = gi + *row;
      if (s.zero_grad) *row = 0.0f;
    }
    if (s.weight_decay != 0) gi = gi + s.weight_decay * p[i];
    // Each product rounded on its own, as in the lanes above (the file is
    // built with -ffp-contract=off: no fused multiply-adds).
    const float mi = m[i] * s.beta1 + s.one_minus_beta1 * gi;
    const float vi = v[i] * s.beta2 + s.one_minus_beta2 * gi * gi;
    const float denom = std::sqrt(vi) / s.bias_correction2_sqrt + s.eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] + s.neg_step_size * mi / denom;
  }
}

}  // namespace

void ShardedAdamStep(torch::optim::Adam& adam, StepWorkers* workers, bool zero_grad,
                     const std::vector<torch::Tensor>& more_grads) {
  auto& state = adam.state();
  using Key = typename std::decay_t<decltype(state)>::key_type;
  std::vector<Slot> slots;
  int64_t total = 0;
  // more_grads[index] of each parameter, checked; undefined: none.
  std::vector<torch::Tensor> more;
  bool fast = true;
  for (auto& group : adam.param_groups()) {
    auto& o = static_cast<torch::optim::AdamOptions&>(group.options());
    for (const torch::Tensor& p : group.params()) {
      const size_t index = more.size();
      more.push_back(index < more_grads.size() ? more_grads[index] : torch::Tensor());
      if (!p.grad().defined()) continue;
      const torch::Tensor& g = p.grad();
      const torch::Tensor& m = more.back();
      TORCH_CHECK(!m.defined() || (m.dim() == 2 && m.size(1) == p.numel() &&
                                   m.scalar_type() == g.scalar_type() &&
                                   m.device() == g.device() && m.is_contiguous()),
                  "ShardedAdamStep: more_grads[", index, "] must be [rows, ", p.numel(),
                  "] and contiguous like the gradient, got ", m.sizes());
      if (o.amsgrad() || !p.device().is_cpu() || p.scalar_type() != torch::kFloat ||
          g.scalar_type() != torch::kFloat || !p.is_contiguous() || !g.is_contiguous()) {
        fast = false;
      }
    }
  }
  if (!fast) {
    torch::NoGradGuard no_grad;
    size_t index = 0;
    for (auto& group : adam.param_groups()) {
      for (torch::Tensor& p : group.params()) {
        const torch::Tensor& m = more[index++];
        if (!m.defined() || !p.grad().defined()) continue;
        for (int64_t r = 0; r < m.size(0); ++r) p.mutable_grad().add_(m[r].view(p.sizes()));
        if (zero_grad) m.zero_();
      }
    }
    adam.step();
    if (zero_grad) {
      for (auto& group : adam.param_groups()) {
        for (torch::Tensor& p : group.params()) {
          if (p.grad().defined()) p.mutable_grad().zero_();
        }
      }
    }
    return;
  }
  size_t index = 0;
  for (auto& group : adam.param_groups()) {
    auto& o = static_cast<torch::optim::AdamOptions&>(group.options());
    for (const torch::Tensor& p : group.params()) {
      const torch::Tensor& m = more[index++];
      if (!p.grad().defined()) continue;
      const Key key = StateKey<Key>(p);
      auto it = state.find(key);
      if (it == state.end()) {
        auto s = std::make_unique<torch::optim::AdamParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state.insert({key, std::move(s)}).first;
      }
      auto& s = static_cast<torch::optim::AdamParamState&>(*it->second);
      s.step(s.step() + 1);
      Slot slot;
      slot.param = p.data_ptr<float>();
      slot.grad = p.grad().data_ptr<float>();
      if (m.defined() && m.size(0) > 0) {
        slot.more = m.data_ptr<float>();
        slot.more_rows = m.size(0);
        slot.more_stride = m.size(1);
      }
      slot.exp_avg = s.exp_avg().data_ptr<float>();
      slot.exp_avg_sq = s.exp_avg_sq().data_ptr<float>();
      slot.numel = p.numel();
      slot.offset = total;
      slot.zero_grad = zero_grad;
      const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
      slot.beta1 = static_cast<float>(beta1);
      slot.one_minus_beta1 = static_cast<float>(1 - beta1);
      slot.beta2 = static_cast<float>(beta2);
      slot.one_minus_beta2 = static_cast<float>(1 - beta2);
      slot.eps = static_cast<float>(o.eps());
      slot.weight_decay = static_cast<float>(o.weight_decay());
      const double bias_correction1 = 1 - std::pow(beta1, s.step());
      const double bias_correction2 = 1 - std::pow(beta2, s.step());
      slot.bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
      slot.neg_step_size = static_cast<float>(-o.lr() / bias_correction1);
      total += p.numel();
      slots.push_back(std::move(slot));
    }
  }
  auto update = [&](int sh, int n) {
    // Near-equal ranges of the concatenation, rounded down to multiples of
    // 64 elements (the results do not depend on where they fall).
    auto bound = [&](int i) { return i == n ? total : (total * i / n) / 64 * 64; };
    const int64_t lo = bound(sh), hi = bound(sh + 1);
    for (const Slot& slot : slots) {
      const int64_t a = std::max(lo, slot.offset), b = std::min(hi, slot.offset + slot.numel);
      if (a < b) UpdateRange(slot, a - slot.offset, b - a);
    }
  };
  if (workers == nullptr) {
    update(0, 1);
  } else {
    workers->Run([&](int sh) { update(sh, workers->shards()); });
  }
}

}  // namespace recsys
