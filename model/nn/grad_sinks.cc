#include "model/nn/grad_sinks.h"

#include <utility>

#include "model/nn/cpu_matmul.h"

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

KernelSinks SinksFor(const std::vector<torch::Tensor>& weights, bool keeps_graph) {
  const GradSinks* sinks = this_threads_sinks;
  if (sinks == nullptr || !keeps_graph || !at::GradMode::is_enabled()) return {};
  KernelSinks out;
  out.tensors.resize(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!weights[i].defined()) continue;
    const torch::Tensor* sink = sinks->Find(weights[i]);
    if (sink == nullptr || !weights[i].requires_grad()) return {};
    out.tensors[i] = *sink;
  }
  return out;
}

void KernelSinks::Save(torch::autograd::AutogradContext* ctx) {
  if (!tensors.empty()) ctx->saved_data["sinks"] = std::move(tensors);
}

KernelSinks KernelSinks::Load(torch::autograd::AutogradContext* ctx) {
  KernelSinks out;
  if (ctx->saved_data.count("sinks") != 0) {
    out.tensors = ctx->saved_data["sinks"].toTensorVector();
  }
  return out;
}

torch::Tensor KernelSinks::Product(size_t i, const torch::Tensor& a,
                                   const torch::Tensor& b) const {
  if (tensors.empty()) return MatmulTransposeA(a, b);
  AddMatmulTransposeAInPlace(tensors[i], a, b);
  return torch::Tensor();
}

torch::Tensor KernelSinks::Add(size_t i, torch::Tensor grad) const {
  if (tensors.empty()) return grad;
  tensors[i].add_(grad);
  return torch::Tensor();
}

}  // namespace recsys
