#include "model/nn/fused_intra_path.h"

#include <cmath>
#include <utility>
#include <vector>

#include "model/nn/cpu_matmul.h"
#include "model/nn/float4.h"
#include "model/nn/grad_sinks.h"

namespace recsys {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int kParamsPerBlock = 5;  // gate, down weight and bias, up weight and bias

bool FloatCpu(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat;
}

class FusedIntraPathFunction : public torch::autograd::Function<FusedIntraPathFunction> {
 public:
  // params: kParamsPerBlock per block, in FusedSideBlock's order.
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor h_in,
                               at::TensorList params, std::vector<double> temperatures,
                               KernelSinks sinks) {
    const torch::Tensor h = h_in.contiguous();
    const int64_t U = h.size(0), K = h.size(1), D = h.size(2);
    const float* hp = h.data_ptr<float>();
    std::vector<double> gates(K);
    torch::Tensor s;  // s_{i-1}; undefined for s_0 = 0
    variable_list saved;
    for (int64_t i = 0; i < K; ++i) {
      const torch::Tensor* p = &params[i * kParamsPerBlock];
      const float w = p[0].item<float>();
      const float g = 1.0f / (1.0f + std::exp(-w / static_cast<float>(temperatures[i])));
      gates[i] = g;
      torch::Tensor x = torch::empty({U, D}, torch::kFloat);
      torch::Tensor diff = torch::empty({U, D}, torch::kFloat);  // h_i - s_{i-1}
      float* xp = x.data_ptr<float>();
      float* dp = diff.data_ptr<float>();
      const float* sp = s.defined() ? s.data_ptr<float>() : nullptr;
      const float rest = 1.0f - g;
      const Float4 g4 = {g, g, g, g}, rest4 = {rest, rest, rest, rest};
      for (int64_t u = 0; u < U; ++u) {
        const float* hr = hp + (u * K + i) * D;
        float* xr = xp + u * D;
        float* dr = dp + u * D;
        const float* sr = sp != nullptr ? sp + u * D : nullptr;
        int64_t d = 0;
        for (; d + 4 <= D; d += 4) {
          const Float4 hv = Load4(hr + d);
          if (sr == nullptr) {
            Store4(xr + d, g4 * hv);
            Store4(dr + d, hv);
          } else {
            const Float4 sv = Load4(sr + d);
            Store4(xr + d, g4 * hv + rest4 * sv);
            Store4(dr + d, hv - sv);
          }
        }
        for (; d < D; ++d) {
          const float sv = sr != nullptr ? sr[d] : 0.0f;
          xr[d] = sr != nullptr ? g * hr[d] + rest * sv : g * hr[d];
          dr[d] = hr[d] - sv;
        }
      }
      torch::Tensor a = LinearRows(x, p[1], p[2]).relu_();
      s = LinearRows(a, p[3], p[4]).add_(x);
      saved.push_back(x);
      saved.push_back(a);
      saved.push_back(diff);
    }
    for (const torch::Tensor& p : params) saved.push_back(p);
    ctx->save_for_backward(saved);
    ctx->saved_data["gates"] = gates;
    ctx->saved_data["temperatures"] = temperatures;
    ctx->saved_data["shape"] = std::vector<int64_t>{U, K, D};
    sinks.Save(ctx);
    return s;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list v = ctx->get_saved_variables();
    const std::vector<double> gates = ctx->saved_data["gates"].toDoubleVector();
    const std::vector<double> temperatures = ctx->saved_data["temperatures"].toDoubleVector();
    const std::vector<int64_t> shape = ctx->saved_data["shape"].toIntVector();
    const int64_t U = shape[0], K = shape[1], D = shape[2];
    const torch::Tensor* params = &v[3 * K];
    const bool want_h = ctx->needs_input_grad(0);
    variable_list grads(1 + K * kParamsPerBlock + 2);  // h, params, temperatures, sinks
    // A layer's weight or bias gradient: returned to autograd, or added
    // into its sink (none for the gates).
    const KernelSinks sinks = KernelSinks::Load(ctx);
    torch::Tensor dh = want_h ? torch::empty({U, K, D}, torch::kFloat) : torch::Tensor();
    torch::Tensor ds = grad_outputs[0].contiguous();
    for (int64_t i = K - 1; i >= 0; --i) {
      const torch::Tensor& x = v[3 * i];
      const torch::Tensor& a = v[3 * i + 1];
      const torch::Tensor& diff = v[3 * i + 2];
      const torch::Tensor* p = &params[i * kParamsPerBlock];
      torch::Tensor* out = &grads[1 + i * kParamsPerBlock];
      const int64_t first = i * kParamsPerBlock;
      out[3] = sinks.Product(first + 3, ds, a);
      out[4] = sinks.Add(first + 4, ds.sum(0));
      // relu's backward: zero where its output was 0.
      torch::Tensor da = Matmul(ds, p[3]);
      {
        float* dp = da.data_ptr<float>();
        const float* ap = a.data_ptr<float>();
        const int64_t n = da.numel();
        const Float4 zero = {0, 0, 0, 0};
        int64_t j = 0;
        for (; j + 4 <= n; j += 4) {
          Store4(dp + j, Load4(ap + j) > zero ? Load4(dp + j) : zero);
        }
        for (; j < n; ++j) {
          if (ap[j] <= 0.0f) dp[j] = 0.0f;
        }
      }
      out[1] = sinks.Product(first + 1, da, x);
      out[2] = sinks.Add(first + 2, da.sum(0));
      // residual + down's input; into ds itself, except the caller's gradient
      const torch::Tensor dx = i == K - 1 ? ds.clone() : ds;
      AddMatmulInPlace(dx, da, p[1]);
      const double g = gates[i];
      const double dg = torch::dot(dx.view(-1), diff.view(-1)).item<double>();
      out[0] = torch::full({1}, dg * g * (1.0 - g) / temperatures[i], torch::kFloat);
      if (want_h) dh.select(1, i).copy_(dx * static_cast<float>(g));
      if (i > 0) ds = dx * static_cast<float>(1.0 - g);
    }
    grads[0] = dh;
    return grads;
  }
};

}  // namespace

bool FusedIntraPathApplies(const torch::Tensor& h, const std::vector<FusedSideBlock>& blocks) {
  if (!FloatCpu(h) || h.dim() != 3 || blocks.empty() ||
      h.size(1) != static_cast<int64_t>(blocks.size())) {
    return false;
  }
  for (const FusedSideBlock& b : blocks) {
    for (const torch::Tensor* t :
         {&b.gate_weight, &b.down_weight, &b.down_bias, &b.up_weight, &b.up_bias}) {
      if (!FloatCpu(*t)) return false;
    }
  }
  return true;
}

torch::Tensor FusedIntraPathForward(const torch::Tensor& h,
                                    const std::vector<FusedSideBlock>& blocks) {
  TORCH_CHECK(FusedIntraPathApplies(h, blocks),
              "fused intra-modal path: expects float CPU [U, K, D] with K = ", blocks.size(),
              " blocks, got ", h.sizes());
  std::vector<torch::Tensor> params;
  std::vector<double> temperatures;
  params.reserve(blocks.size() * kParamsPerBlock);
  for (const FusedSideBlock& b : blocks) {
    TORCH_CHECK(b.temperature > 0, "fused intra-modal path: temperature ", b.temperature,
                " <= 0");
    params.insert(params.end(),
                  {b.gate_weight, b.down_weight, b.down_bias, b.up_weight, b.up_bias});
    temperatures.push_back(b.temperature);
  }
  // The gates stay in the graph (a scalar each, through autograd): the
  // node's backward runs even though h, the frozen states, needs no gradient.
  bool gates_need_grad = true;
  for (size_t i = 0; i < params.size(); i += kParamsPerBlock) {
    gates_need_grad = gates_need_grad && params[i].requires_grad();
  }
  std::vector<torch::Tensor> sinkable = params;
  for (size_t i = 0; i < sinkable.size(); i += kParamsPerBlock) sinkable[i] = torch::Tensor();
  KernelSinks sinks = SinksFor(sinkable, gates_need_grad);
  if (!sinks.empty()) {
    for (size_t i = 0; i < params.size(); ++i) {
      if (i % kParamsPerBlock != 0) params[i] = params[i].detach();  // to the sinks
    }
  }
  return FusedIntraPathFunction::apply(h, at::TensorList(params), temperatures,
                                       std::move(sinks));
}

}  // namespace recsys
