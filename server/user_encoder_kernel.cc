#include "server/user_encoder_kernel.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/cpu_features.h"
#include "model/nn/user_encoder.h"

namespace recsys {
namespace {

// torch::nn::LayerNorm's default.
constexpr float kLayerNormEps = 1e-5f;
// Attention scores live on the stack.
constexpr int64_t kMaxLen = 512;

// y[m, lin.out] = x[m, lin.in] (row stride ldx) * weight^T + bias.
template <typename L>
void Apply(const L& lin, const float* x, int64_t ldx, int64_t m, float* y) {
  for (int64_t r = 0; r < m; ++r) std::memcpy(y + r * lin.out, lin.bias.data(), lin.out * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
              static_cast<int>(lin.out), static_cast<int>(lin.in), 1.0f, x,
              static_cast<int>(ldx), lin.weight.data(), static_cast<int>(lin.in), 1.0f, y,
              static_cast<int>(lin.out));
}

// x[r] = LayerNorm(x[r] + residual[r]) for m rows of d (residual may be null).
template <typename N>
void AddNorm(const N& norm, const float* residual, int64_t ldr, int64_t m, int64_t d, float* x) {
  for (int64_t r = 0; r < m; ++r) {
    float* row = x + r * d;
    if (residual != nullptr) {
      const float* res = residual + r * ldr;
      for (int64_t j = 0; j < d; ++j) row[j] += res[j];
    }
    float mean = 0;
    for (int64_t j = 0; j < d; ++j) mean += row[j];
    mean /= d;
    float var = 0;
    for (int64_t j = 0; j < d; ++j) var += (row[j] - mean) * (row[j] - mean);
    const float inv = 1.0f / std::sqrt(var / d + kLayerNormEps);
    for (int64_t j = 0; j < d; ++j) {
      row[j] = (row[j] - mean) * inv * norm.weight[j] + norm.bias[j];
    }
  }
}

// GELU with the exact (erf) form torch::gelu uses by default. erf by
// Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), the approximation
// LibTorch's vectorised CPU kernel uses too.
constexpr float kErfP = 0.3275911f;
constexpr float kErfA1 = 0.254829592f, kErfA2 = -0.284496736f, kErfA3 = 1.421413741f,
                kErfA4 = -1.453152027f, kErfA5 = 1.061405429f;
constexpr float kInvSqrt2 = 0.70710678118654752f;

void GeluPortable(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float z = std::fabs(x[i]) * kInvSqrt2;
    const float t = 1.0f / (1.0f + kErfP * z);
    const float poly = t * (kErfA1 + t * (kErfA2 + t * (kErfA3 + t * (kErfA4 + t * kErfA5))));
    const float erf_abs = 1.0f - poly * std::exp(-z * z);
    x[i] = 0.5f * x[i] * (1.0f + std::copysign(erf_abs, x[i]));
  }
}

#if defined(__x86_64__)
// exp(x) for x <= 0 (results below ~1e-38 flush to 0): 2^n * e^r with
// |r| <= ln2 / 2 and a degree-7 Taylor polynomial (relative error ~1e-8
// before float rounding).
__attribute__((target("avx2,fma"))) inline __m256 ExpNonPositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);  // ln2, high part
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);     // ln2, low part
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

__attribute__((target("avx2,fma"))) void GeluAvx2(float* x, int64_t n) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 sign = _mm256_and_ps(v, sign_bit);
    const __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign_bit, v), _mm256_set1_ps(kInvSqrt2));
    const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(kErfP), z, one));
    __m256 poly = _mm256_fmadd_ps(t, _mm256_set1_ps(kErfA5), _mm256_set1_ps(kErfA4));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(kErfA3));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(kErfA2));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(kErfA1));
    poly = _mm256_mul_ps(poly, t);
    const __m256 e = ExpNonPositive(_mm256_xor_ps(_mm256_mul_ps(z, z), sign_bit));
    const __m256 erf_abs = _mm256_fnmadd_ps(poly, e, one);
    const __m256 erf = _mm256_or_ps(erf_abs, sign);
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v),
                                          _mm256_add_ps(one, erf)));
  }
  GeluPortable(x + i, n - i);
}

#endif

void Gelu(float* x, int64_t n) {
#if defined(__x86_64__)
  static const bool avx2 = HaveAvx2Fma();
  if (avx2) {
    GeluAvx2(x, n);
    return;
  }
#endif
  GeluPortable(x, n);
}

absl::Status CopyParameter(const torch::OrderedDict<std::string, torch::Tensor>& params,
                           const std::string& name, std::vector<int64_t> shape,
                           std::vector<float>* out) {
  const torch::Tensor* t = params.find(name);
  if (t == nullptr) return absl::InvalidArgumentError(absl::StrCat("no parameter ", name));
  if (t->sizes().vec() != shape) {
    return absl::InvalidArgumentError(absl::StrCat("parameter ", name, " has shape ",
                                                   c10::str(t->sizes()), ", not ",
                                                   c10::str(c10::IntArrayRef(shape))));
  }
  torch::Tensor c = t->detach().to(torch::kCPU, torch::kFloat).contiguous();
  out->assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return absl::OkStatus();
}

}  // namespace

// Per-thread buffers, grown to the largest batch seen.
struct UserEncoderKernel::Scratch {
  std::vector<float> x, qkv, ctx, y, ffn, last, q;
  std::vector<int64_t> begin;  // user u's packed rows: [begin[u], begin[u + 1])
};

absl::StatusOr<std::unique_ptr<UserEncoderKernel>> UserEncoderKernel::Create(
    const UserEncoderImpl& encoder) {
  const UserEncoderOptions& o = encoder.options();
  auto k = std::unique_ptr<UserEncoderKernel>(new UserEncoderKernel());
  k->dim_ = o.dim();
  k->heads_ = o.num_heads();
  k->ffn_dim_ = o.ffn_dim();
  k->max_len_ = o.max_len();
  const int64_t d = o.dim(), f = o.ffn_dim();
  if (d <= 0 || k->heads_ <= 0 || d % k->heads_ != 0 || f <= 0 || k->max_len_ <= 0 ||
      k->max_len_ > kMaxLen) {
    return absl::InvalidArgumentError("user encoder options out of range");
  }
  try {
    torch::NoGradGuard no_grad;
    const auto params = encoder.named_parameters(/*recurse=*/true);
    absl::Status s = CopyParameter(params, "positions.weight", {k->max_len_, d}, &k->positions_);
    if (s.ok()) s = CopyParameter(params, "ln_in.weight", {d}, &k->ln_in_.weight);
    if (s.ok()) s = CopyParameter(params, "ln_in.bias", {d}, &k->ln_in_.bias);
    for (int64_t i = 0; s.ok() && i < o.num_layers(); ++i) {
      Block b;
      const std::string p = absl::StrCat("blocks.", i, ".");
      auto linear = [&](const char* name, int64_t in, int64_t out, Linear* lin) {
        lin->in = in;
        lin->out = out;
        absl::Status st = CopyParameter(params, p + name + ".weight", {out, in}, &lin->weight);
        if (st.ok()) st = CopyParameter(params, p + name + ".bias", {out}, &lin->bias);
        return st;
      };
      auto norm = [&](const char* name, Norm* n) {
        absl::Status st = CopyParameter(params, p + name + ".weight", {d}, &n->weight);
        if (st.ok()) st = CopyParameter(params, p + name + ".bias", {d}, &n->bias);
        return st;
      };
      s = linear("qkv", d, 3 * d, &b.qkv);
      if (s.ok()) s = linear("out", d, d, &b.out);
      if (s.ok()) s = linear("ffn1", d, f, &b.ffn1);
      if (s.ok()) s = linear("ffn2", f, d, &b.ffn2);
      if (s.ok()) s = norm("ln1", &b.ln1);
      if (s.ok()) s = norm("ln2", &b.ln2);
      k->blocks_.push_back(std::move(b));
    }
    if (!s.ok()) return s;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("copying the user encoder's weights: ",
                                            e.what_without_backtrace()));
  }
  if (!k->blocks_.empty()) {
    // qkv's weight rows: [0, d) the query's, [d, 3d) the keys' and values'.
    const Linear& qkv = k->blocks_.back().qkv;
    k->last_q_ = {std::vector<float>(qkv.weight.begin(), qkv.weight.begin() + d * d),
                  std::vector<float>(qkv.bias.begin(), qkv.bias.begin() + d), d, d};
    k->last_kv_ = {std::vector<float>(qkv.weight.begin() + d * d, qkv.weight.end()),
                   std::vector<float>(qkv.bias.begin() + d, qkv.bias.end()), d, 2 * d};
  }
  return k;
}

// ctx[h * hd ..] for each of `queries` packed rows of one user: row j
// (first_query + j) attends to that user's rows 0..first_query + j (the
// packed rows are the user's valid positions and its last one, and each
// may see every packed row at or before it; see ForwardLast). q rows are
// q_stride apart; k and v are the kv rows' first and second d values.
void UserEncoderKernel::Attention(const float* q, int64_t q_stride, const float* kv,
                                  int64_t kv_stride, int64_t first_query, int64_t queries,
                                  float* ctx) const {
  const int64_t d = dim_, hd = dim_ / heads_;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  float scores[kMaxLen];
  for (int64_t j = 0; j < queries; ++j) {
    const int64_t keys = first_query + j + 1;
    const float* qr = q + j * q_stride;
    float* out = ctx + j * d;
    for (int64_t h = 0; h < heads_; ++h) {
      const float* qh = qr + h * hd;
      float best = -INFINITY;
      for (int64_t t = 0; t < keys; ++t) {
        const float* kh = kv + t * kv_stride + h * hd;
        float s = 0;
        for (int64_t i = 0; i < hd; ++i) s += qh[i] * kh[i];
        scores[t] = s * scale;
        best = std::max(best, scores[t]);
      }
      float sum = 0;
      for (int64_t t = 0; t < keys; ++t) {
        scores[t] = std::exp(scores[t] - best);
        sum += scores[t];
      }
      float* oh = out + h * hd;
      std::fill(oh, oh + hd, 0.0f);
      for (int64_t t = 0; t < keys; ++t) {
        const float p = scores[t] / sum;
        const float* vh = kv + t * kv_stride + d + h * hd;
        for (int64_t i = 0; i < hd; ++i) oh[i] += p * vh[i];
      }
    }
  }
}

void UserEncoderKernel::ForwardLast(const float* items, const uint8_t* valid, int64_t b,
                                    float* out) const {
  thread_local Scratch s;
  const int64_t d = dim_, f = ffn_dim_, len = max_len_;
  // Pack each user's rows: its valid positions, and its last position even
  // if empty. A valid position attends only to valid positions at or before
  // it, the last to those and itself, so within the packed rows every row
  // attends to all packed rows of its user up to itself, and padded rows
  // (which forward computes and nothing valid reads) are skipped.
  s.begin.assign(b + 1, 0);
  s.x.resize(b * len * d);
  int64_t rows = 0;
  for (int64_t u = 0; u < b; ++u) {
    s.begin[u] = rows;
    for (int64_t t = 0; t < len; ++t) {
      const bool is_valid = valid[u * len + t] != 0;
      if (!is_valid && t != len - 1) continue;
      float* x = s.x.data() + rows * d;
      if (is_valid) {
        const float* item = items + (u * len + t) * d;
        const float* pos = positions_.data() + t * d;
        for (int64_t j = 0; j < d; ++j) x[j] = item[j] + pos[j];
      }
      ++rows;
      if (is_valid) {
        AddNorm(ln_in_, nullptr, 0, 1, d, x);
      } else {
        std::fill(x, x + d, 0.0f);  // forward: LN(...) * valid
      }
    }
  }
  s.begin[b] = rows;
  if (blocks_.empty()) {
    for (int64_t u = 0; u < b; ++u) {
      std::memcpy(out + u * d, s.x.data() + (s.begin[u + 1] - 1) * d, d * sizeof(float));
    }
    return;
  }
  s.qkv.resize(rows * 3 * d);
  s.ctx.resize(rows * d);
  s.y.resize(rows * d);
  s.ffn.resize(rows * f);
  for (size_t layer = 0; layer + 1 < blocks_.size(); ++layer) {
    const Block& blk = blocks_[layer];
    Apply(blk.qkv, s.x.data(), d, rows, s.qkv.data());
    for (int64_t u = 0; u < b; ++u) {
      const float* qkv = s.qkv.data() + s.begin[u] * 3 * d;
      Attention(qkv, 3 * d, qkv + d, 3 * d, 0, s.begin[u + 1] - s.begin[u],
                s.ctx.data() + s.begin[u] * d);
    }
    Apply(blk.out, s.ctx.data(), d, rows, s.y.data());
    AddNorm(blk.ln1, s.x.data(), d, rows, d, s.y.data());  // y = LN1(x + out)
    Apply(blk.ffn1, s.y.data(), d, rows, s.ffn.data());
    Gelu(s.ffn.data(), rows * f);
    Apply(blk.ffn2, s.ffn.data(), f, rows, s.x.data());
    AddNorm(blk.ln2, s.y.data(), d, rows, d, s.x.data());  // x = LN2(y + ffn)
  }
  // The last block: keys and values of every packed row, the rest for each
  // user's last row only.
  const Block& blk = blocks_.back();
  s.last.resize(b * d);
  s.q.resize(b * d);
  for (int64_t u = 0; u < b; ++u) {
    std::memcpy(s.last.data() + u * d, s.x.data() + (s.begin[u + 1] - 1) * d, d * sizeof(float));
  }
  Apply(last_kv_, s.x.data(), d, rows, s.qkv.data());  // [rows, 2d]
  Apply(last_q_, s.last.data(), d, b, s.q.data());
  for (int64_t u = 0; u < b; ++u) {
    const int64_t n = s.begin[u + 1] - s.begin[u];
    Attention(s.q.data() + u * d, d, s.qkv.data() + s.begin[u] * 2 * d, 2 * d, n - 1, 1,
              s.ctx.data() + u * d);
  }
  Apply(blk.out, s.ctx.data(), d, b, s.y.data());
  AddNorm(blk.ln1, s.last.data(), d, b, d, s.y.data());
  Apply(blk.ffn1, s.y.data(), d, b, s.ffn.data());
  Gelu(s.ffn.data(), b * f);
  Apply(blk.ffn2, s.ffn.data(), f, b, out);
  AddNorm(blk.ln2, s.y.data(), d, b, d, out);
}

}  // namespace recsys
