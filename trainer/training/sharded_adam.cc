#include "trainer/training/sharded_adam.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

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

struct Slot {
  torch::Tensor param, grad, exp_avg, exp_avg_sq;
  int64_t offset = 0;  // in the concatenation of every slot
  double beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  double bias_correction2_sqrt = 0, step_size = 0;
};

}  // namespace

void ShardedAdamStep(torch::optim::Adam& adam, StepWorkers& workers) {
  auto& state = adam.state();
  using Key = typename std::decay_t<decltype(state)>::key_type;
  std::vector<Slot> slots;
  int64_t total = 0;
  for (auto& group : adam.param_groups()) {
    auto& o = static_cast<torch::optim::AdamOptions&>(group.options());
    for (const torch::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (o.amsgrad() || !p.device().is_cpu() || !p.is_contiguous()) {
        adam.step();
        return;
      }
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& group : adam.param_groups()) {
    auto& o = static_cast<torch::optim::AdamOptions&>(group.options());
    for (const torch::Tensor& p : group.params()) {
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
      slot.param = p;
      slot.grad = p.grad();
      slot.exp_avg = s.exp_avg();
      slot.exp_avg_sq = s.exp_avg_sq();
      slot.offset = total;
      slot.beta1 = std::get<0>(o.betas());
      slot.beta2 = std::get<1>(o.betas());
      slot.eps = o.eps();
      slot.weight_decay = o.weight_decay();
      const double bias_correction1 = 1 - std::pow(slot.beta1, s.step());
      const double bias_correction2 = 1 - std::pow(slot.beta2, s.step());
      slot.bias_correction2_sqrt = std::sqrt(bias_correction2);
      slot.step_size = o.lr() / bias_correction1;
      total += p.numel();
      slots.push_back(std::move(slot));
    }
  }
  const int n = workers.shards();
  workers.Run([&](int sh) {
    torch::NoGradGuard no_grad_here;  // grad mode is per thread
    // Shard boundaries rounded down to multiples of 64 elements.
    auto bound = [&](int i) { return i == n ? total : (total * i / n) / 64 * 64; };
    const int64_t lo = bound(sh), hi = bound(sh + 1);
    for (const Slot& slot : slots) {
      const int64_t numel = slot.param.numel();
      const int64_t a = std::max(lo, slot.offset), b = std::min(hi, slot.offset + numel);
      if (a >= b) continue;
      const int64_t from = a - slot.offset, count = b - a;
      torch::Tensor p = slot.param.view({-1}).narrow(0, from, count);
      torch::Tensor grad = slot.grad.view({-1}).narrow(0, from, count);
      torch::Tensor exp_avg = slot.exp_avg.view({-1}).narrow(0, from, count);
      torch::Tensor exp_avg_sq = slot.exp_avg_sq.view({-1}).narrow(0, from, count);
      if (slot.weight_decay != 0) grad = grad.add(p, slot.weight_decay);
      exp_avg.mul_(slot.beta1).add_(grad, 1 - slot.beta1);
      exp_avg_sq.mul_(slot.beta2).addcmul_(grad, grad, 1 - slot.beta2);
      torch::Tensor denom = (exp_avg_sq.sqrt() / slot.bias_correction2_sqrt).add_(slot.eps);
      p.addcdiv_(exp_avg, denom, -slot.step_size);
    }
  });
}

}  // namespace recsys
