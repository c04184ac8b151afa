#include "model/nn/fused_block.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

#include "model/nn/cpu_matmul.h"
#include "model/nn/float4.h"
#include "model/nn/grad_sinks.h"

namespace recsys {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr double kLayerNormEps = 1e-5;  // torch::nn::LayerNorm's default

bool FloatCpu(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat;
}

// The dropout scale factors of one site over `rows` rows of `row_size`
// elements; undefined when p == 0 (no dropout).
torch::Tensor Mask(double p, const DropoutKey& key, int64_t rows, int64_t row_size) {
  if (p == 0.0) return {};
  torch::Tensor m = torch::empty({rows * row_size}, torch::kFloat);
  FillKeyedDropoutMask(p, key, row_size, rows * row_size, m.data_ptr<float>());
  return m;
}

// out[i] = a[i] * mask[i] (mask undefined: a[i]), all of n elements.
void TimesMask(const float* a, const torch::Tensor& mask, int64_t n, float* out) {
  if (!mask.defined()) {
    std::copy(a, a + n, out);
    return;
  }
  const float* m = mask.data_ptr<float>();
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) Store4(out + i, Load4(a + i) * Load4(m + i));
  for (; i < n; ++i) out[i] = a[i] * m[i];
}

// out[i] = base[i] + a[i] * mask[i].
void AddTimesMask(const float* base, const float* a, const torch::Tensor& mask, int64_t n,
                  float* out) {
  const float* m = mask.defined() ? mask.data_ptr<float>() : nullptr;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const Float4 x = m != nullptr ? Load4(a + i) * Load4(m + i) : Load4(a + i);
    Store4(out + i, Load4(base + i) + x);
  }
  for (; i < n; ++i) out[i] = base[i] + (m != nullptr ? a[i] * m[i] : a[i]);
}

// a * mask as a new tensor (a contiguous).
torch::Tensor Masked(const torch::Tensor& a, const torch::Tensor& mask) {
  if (!mask.defined()) return a;
  torch::Tensor out = torch::empty_like(a);
  TimesMask(a.data_ptr<float>(), mask, a.numel(), out.data_ptr<float>());
  return out;
}

// a *= mask: for a temporary of the caller's (contiguous).
torch::Tensor MaskInPlace(torch::Tensor a, const torch::Tensor& mask) {
  if (mask.defined()) TimesMask(a.data_ptr<float>(), mask, a.numel(), a.data_ptr<float>());
  return a;
}

struct Shape {
  int64_t rows, slots, dim, heads, head_dim;
  int64_t n() const { return rows * slots; }
};

// Causal self-attention over qkv [N, 3D] (rows q | k | v per slot): probs
// [R, H, L, L] the softmax over the allowed keys (0 elsewhere), ctx [N, D]
// the dropped probabilities (mask at site 0, laid out as probs) times v.
void AttentionForward(const Shape& s, const float* qkv, const bool* allowed,
                      const torch::Tensor& mask, float* probs, float* ctx) {
  const int64_t L = s.slots, D = s.dim, hd = s.head_dim;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  const float* m = mask.defined() ? mask.data_ptr<float>() : nullptr;
  float dropped[64];  // L <= 64 (checked by the caller)
  for (int64_t r = 0; r < s.rows; ++r) {
    const float* row = qkv + r * L * 3 * D;
    const bool* row_allowed = allowed + r * L * L;
    for (int64_t h = 0; h < s.heads; ++h) {
      for (int64_t t = 0; t < L; ++t) {
        const float* q = row + t * 3 * D + h * hd;
        const int64_t pi = ((r * s.heads + h) * L + t) * L;
        float* p = probs + pi;
        float best = -std::numeric_limits<float>::infinity();
        for (int64_t k = 0; k < L; ++k) {
          if (!row_allowed[t * L + k]) {
            p[k] = -std::numeric_limits<float>::infinity();
            continue;
          }
          p[k] = Dot(q, row + k * 3 * D + D + h * hd, hd) * scale;
          best = std::max(best, p[k]);
        }
        float sum = 0.0f;
        for (int64_t k = 0; k < L; ++k) {
          p[k] = row_allowed[t * L + k] ? std::exp(p[k] - best) : 0.0f;
          sum += p[k];
        }
        const float inv = 1.0f / sum;
        for (int64_t k = 0; k < L; ++k) {
          p[k] *= inv;
          dropped[k] = m != nullptr ? p[k] * m[pi + k] : p[k];
        }
        float* c = ctx + (r * L + t) * D + h * hd;
        std::fill(c, c + hd, 0.0f);
        for (int64_t k = 0; k < L; ++k) {
          if (dropped[k] != 0.0f) Axpy(dropped[k], row + k * 3 * D + 2 * D + h * hd, c, hd);
        }
      }
    }
  }
}

// The backward of AttentionForward: from dctx [N, D] into dqkv [N, 3D]
// (zeroed by the caller).
void AttentionBackward(const Shape& s, const float* qkv, const float* probs,
                       const torch::Tensor& mask, const float* dctx, float* dqkv) {
  const int64_t L = s.slots, D = s.dim, hd = s.head_dim;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  const float* m = mask.defined() ? mask.data_ptr<float>() : nullptr;
  float dp[64];
  for (int64_t r = 0; r < s.rows; ++r) {
    const float* row = qkv + r * L * 3 * D;
    float* drow = dqkv + r * L * 3 * D;
    for (int64_t h = 0; h < s.heads; ++h) {
      for (int64_t t = 0; t < L; ++t) {
        const int64_t pi = ((r * s.heads + h) * L + t) * L;
        const float* p = probs + pi;
        const float* dc = dctx + (r * L + t) * D + h * hd;
        // d(dropped probs) = dctx . v; dv += dropped probs * dctx.
        float weighted = 0.0f;  // sum_k p[k] * dp[k]
        for (int64_t k = 0; k < L; ++k) {
          if (p[k] == 0.0f) {
            dp[k] = 0.0f;
            continue;
          }
          const float keep = m != nullptr ? m[pi + k] : 1.0f;
          const int64_t v_at = k * 3 * D + 2 * D + h * hd;
          if (keep != 0.0f) Axpy(p[k] * keep, dc, drow + v_at, hd);
          dp[k] = keep != 0.0f ? Dot(dc, row + v_at, hd) * keep : 0.0f;
          weighted += p[k] * dp[k];
        }
        // Softmax backward, then the scaled dot products' into q and k.
        const float* q = row + t * 3 * D + h * hd;
        float* dq = drow + t * 3 * D + h * hd;
        for (int64_t k = 0; k < L; ++k) {
          if (p[k] == 0.0f) continue;
          const float ds = p[k] * (dp[k] - weighted) * scale;
          if (ds == 0.0f) continue;
          Axpy(ds, row + k * 3 * D + D + h * hd, dq, hd);
          Axpy(ds, q, drow + k * 3 * D + D + h * hd, hd);
        }
      }
    }
  }
}

// The weights, in FusedBlockWeights' order (their sinks' order).
enum Weight {
  kWQkvW, kWQkvB, kWOutW, kWOutB, kWLn1W, kWLn1B, kWFfn1W, kWFfn1B, kWFfn2W, kWFfn2B,
  kWLn2W, kWLn2B, kWeights
};

// The saved tensors, in save_for_backward's order.
enum Saved {
  kX, kQkv, kProbs, kCtx, kZ1, kMean1, kRstd1, kY, kH1, kGd, kZ2, kMean2, kRstd2,
  kQkvW, kOutW, kLn1W, kLn1B, kFfn1W, kFfn2W, kLn2W, kLn2B,
  kMask0, kMask1, kMask2, kMask3
};

class FusedBlockFunction : public torch::autograd::Function<FusedBlockFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, torch::Tensor allowed,
                               torch::Tensor qkv_w, torch::Tensor qkv_b, torch::Tensor out_w,
                               torch::Tensor out_b, torch::Tensor ln1_w, torch::Tensor ln1_b,
                               torch::Tensor ffn1_w, torch::Tensor ffn1_b, torch::Tensor ffn2_w,
                               torch::Tensor ffn2_b, torch::Tensor ln2_w, torch::Tensor ln2_b,
                               int64_t heads, double p, int64_t key, int64_t first_row,
                               KernelSinks sinks) {
    const Shape s{x.size(0), x.size(1), x.size(2), heads, x.size(2) / heads};
    const int64_t N = s.n(), D = s.dim, F = ffn1_w.size(0), L = s.slots;
    const DropoutKey block{static_cast<uint64_t>(key), first_row};
    torch::Tensor masks[4] = {Mask(p, block.Site(0), s.rows, heads * L * L),
                              Mask(p, block.Site(1), s.rows, L * D),
                              Mask(p, block.Site(2), s.rows, L * F),
                              Mask(p, block.Site(3), s.rows, L * D)};
    torch::Tensor allowed_c = allowed.contiguous();
    torch::Tensor x2 = x.contiguous().view({N, D});
    torch::Tensor qkv = LinearRows(x2, qkv_w, qkv_b);
    torch::Tensor probs = torch::empty({s.rows, heads, L, L}, torch::kFloat);
    torch::Tensor context = torch::empty({N, D}, torch::kFloat);
    AttentionForward(s, qkv.data_ptr<float>(), allowed_c.data_ptr<bool>(), masks[0],
                     probs.data_ptr<float>(), context.data_ptr<float>());
    torch::Tensor o = LinearRows(context, out_w, out_b);
    torch::Tensor z1 = torch::empty({N, D}, torch::kFloat);
    AddTimesMask(x2.data_ptr<float>(), o.data_ptr<float>(), masks[1], N * D,
                 z1.data_ptr<float>());
    auto [y, mean1, rstd1] = at::native_layer_norm(z1, {D}, ln1_w, ln1_b, kLayerNormEps);
    torch::Tensor h1 = LinearRows(y, ffn1_w, ffn1_b);
    torch::Tensor gd = MaskInPlace(at::gelu(h1), masks[2]);
    torch::Tensor h2 = LinearRows(gd, ffn2_w, ffn2_b);
    torch::Tensor z2 = torch::empty({N, D}, torch::kFloat);
    AddTimesMask(y.data_ptr<float>(), h2.data_ptr<float>(), masks[3], N * D,
                 z2.data_ptr<float>());
    auto [out, mean2, rstd2] = at::native_layer_norm(z2, {D}, ln2_w, ln2_b, kLayerNormEps);
    ctx->save_for_backward({x2, qkv, probs, context, z1, mean1, rstd1, y, h1, gd, z2, mean2,
                            rstd2, qkv_w, out_w, ln1_w, ln1_b, ffn1_w, ffn2_w, ln2_w, ln2_b,
                            masks[0], masks[1], masks[2], masks[3]});
    ctx->saved_data["rows"] = s.rows;
    ctx->saved_data["slots"] = s.slots;
    ctx->saved_data["heads"] = heads;
    sinks.Save(ctx);
    return out.view({s.rows, L, D});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list v = ctx->get_saved_variables();
    const int64_t rows = ctx->saved_data["rows"].toInt();
    const int64_t slots = ctx->saved_data["slots"].toInt();
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const int64_t D = v[kX].size(1), N = rows * slots;
    const Shape s{rows, slots, D, heads, D / heads};
    torch::Tensor g = grad_outputs[0].contiguous().view({N, D});
    const std::array<bool, 3> all = {true, true, true};
    // Each weight's gradient: returned to autograd, or added into its sink.
    const KernelSinks sinks = KernelSinks::Load(ctx);

    auto [dz2, dln2_w, dln2_b] = at::native_layer_norm_backward(
        g, v[kZ2], {D}, v[kMean2], v[kRstd2], v[kLn2W], v[kLn2B], all);
    torch::Tensor dh2 = Masked(dz2, v[kMask3]);  // dz2 itself flows on to y
    torch::Tensor dffn2_w = sinks.Product(kWFfn2W, dh2, v[kGd]);
    torch::Tensor dffn2_b = sinks.Add(kWFfn2B, dh2.sum(0));
    torch::Tensor dg = MaskInPlace(Matmul(dh2, v[kFfn2W]), v[kMask2]);
    torch::Tensor dh1 = at::gelu_backward(dg, v[kH1]);
    torch::Tensor dffn1_w = sinks.Product(kWFfn1W, dh1, v[kY]);
    torch::Tensor dffn1_b = sinks.Add(kWFfn1B, dh1.sum(0));
    // In place: neither dz2 nor dh2 (dz2 itself without dropout) is read again.
    AddMatmulInPlace(dz2, dh1, v[kFfn1W]);
    const torch::Tensor& dy = dz2;
    auto [dz1, dln1_w, dln1_b] = at::native_layer_norm_backward(
        dy, v[kZ1], {D}, v[kMean1], v[kRstd1], v[kLn1W], v[kLn1B], all);
    torch::Tensor d_o = Masked(dz1, v[kMask1]);  // dz1 itself flows on to x
    torch::Tensor dout_w = sinks.Product(kWOutW, d_o, v[kCtx]);
    torch::Tensor dout_b = sinks.Add(kWOutB, d_o.sum(0));
    torch::Tensor dctx = Matmul(d_o, v[kOutW]);
    torch::Tensor dqkv = torch::zeros({N, 3 * D}, torch::kFloat);
    AttentionBackward(s, v[kQkv].data_ptr<float>(), v[kProbs].data_ptr<float>(), v[kMask0],
                      dctx.data_ptr<float>(), dqkv.data_ptr<float>());
    torch::Tensor dqkv_w = sinks.Product(kWQkvW, dqkv, v[kX]);
    torch::Tensor dqkv_b = sinks.Add(kWQkvB, dqkv.sum(0));
    // In place: neither dz1 nor d_o (dz1 itself without dropout) is read again.
    AddMatmulInPlace(dz1, dqkv, v[kQkvW]);
    const torch::Tensor& dx = dz1;
    return {dx.view({rows, slots, D}),
            torch::Tensor(),  // allowed
            dqkv_w, dqkv_b, dout_w, dout_b,
            sinks.Add(kWLn1W, dln1_w), sinks.Add(kWLn1B, dln1_b),
            dffn1_w, dffn1_b, dffn2_w, dffn2_b,
            sinks.Add(kWLn2W, dln2_w), sinks.Add(kWLn2B, dln2_b),
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};  // heads, p, key, first_row, sinks
  }
};

}  // namespace

bool FusedBlockApplies(const torch::Tensor& x, const torch::Tensor& allowed,
                       const FusedBlockWeights& w) {
  if (!FloatCpu(x) || x.dim() != 3 || x.size(1) > 64) return false;
  if (!allowed.defined() || !allowed.device().is_cpu() ||
      allowed.scalar_type() != torch::kBool) {
    return false;
  }
  for (const torch::Tensor* t :
       {&w.qkv_weight, &w.qkv_bias, &w.out_weight, &w.out_bias, &w.ln1_weight, &w.ln1_bias,
        &w.ffn1_weight, &w.ffn1_bias, &w.ffn2_weight, &w.ffn2_bias, &w.ln2_weight,
        &w.ln2_bias}) {
    if (!FloatCpu(*t)) return false;
  }
  return true;
}

torch::Tensor FusedBlockForward(const torch::Tensor& x, const torch::Tensor& allowed,
                                const FusedBlockWeights& w, int64_t heads, double p,
                                const DropoutKey& key) {
  TORCH_CHECK(FusedBlockApplies(x, allowed, w),
              "fused block: expects float CPU [R, L <= 64, D] and a bool CPU mask, got ",
              x.sizes());
  TORCH_CHECK(heads >= 1 && x.size(2) % heads == 0, "fused block: dim ", x.size(2),
              " not divisible by heads ", heads);
  TORCH_CHECK(allowed.sizes() == torch::IntArrayRef({x.size(0), x.size(1), x.size(1)}),
              "fused block: allowed must be [R, L, L], got ", allowed.sizes());
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout probability ", p, " not in [0, 1)");
  std::vector<torch::Tensor> weights = {w.qkv_weight, w.qkv_bias,  w.out_weight, w.out_bias,
                                        w.ln1_weight, w.ln1_bias,  w.ffn1_weight, w.ffn1_bias,
                                        w.ffn2_weight, w.ffn2_bias, w.ln2_weight,  w.ln2_bias};
  KernelSinks sinks = SinksFor(weights, x.requires_grad());
  if (!sinks.empty()) {
    for (torch::Tensor& t : weights) t = t.detach();  // their gradients go to the sinks
  }
  return FusedBlockFunction::apply(
      x, allowed, weights[kWQkvW], weights[kWQkvB], weights[kWOutW], weights[kWOutB],
      weights[kWLn1W], weights[kWLn1B], weights[kWFfn1W], weights[kWFfn1B], weights[kWFfn2W],
      weights[kWFfn2B], weights[kWLn2W], weights[kWLn2B], heads, p,
      static_cast<int64_t>(key.key), key.first_row, std::move(sinks));
}

}  // namespace recsys
