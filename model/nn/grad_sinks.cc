#include "model/nn/grad_sinks.h"

#include <utility>

namespace recsys {
namespace {

thread_local const GradSinks* this_threads_sinks = nullptr;

}  // namespace

void GradSinks::Add(const torch::Tensor& param, torch::Tensor sink) {
  TORCH_CHECK(sink.device().is_cpu() && sink.scalar_type() == torch::kFloat &&
                  sink.is_contiguous() && sink.sizes() == param.sizes(),
              "gradient sink: expects a contiguous float CPU tensor of shape ", param.sizes(),
              ", got ", sink.sizes());
  sinks_[param.unsafeGetTensorImpl()] = std::move(sink);
}

const torch::Tensor* GradSinks::Find(const torch::Tensor& param) const {
  auto it = sinks_.find(param.unsafeGetTensorImpl());
  return it == sinks_.end() ? nullptr : &it->second;
}

ScopedGradSinks::ScopedGradSinks(const GradSinks* sinks) : previous_(this_threads_sinks) {
  this_threads_sinks = sinks;
}

ScopedGradSinks::~ScopedGradSinks() { this_threads_sinks = previous_; }

std::vector<torch::Tensor> SinksFor(const std::vector<torch::Tensor>& weights,
                                    bool keeps_graph) {
  const GradSinks* sinks = this_threads_sinks;
  if (sinks == nullptr || !keeps_graph || !at::GradMode::is_enabled()) return {};
  std::vector<torch::Tensor> out(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!weights[i].defined()) continue;
    const torch::Tensor* sink = sinks->Find(weights[i]);
    if (sink == nullptr || !weights[i].requires_grad()) return {};
    out[i] = *sink;
  }
  return out;
}

}  // namespace recsys
