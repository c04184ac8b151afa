#include "model/nn/keyed_dropout.h"

#include <cmath>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/cpu_features.h"

namespace recsys {

uint64_t MixBits(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

DropoutKey DropoutKey::Site(uint64_t site) const {
  return DropoutKey{MixBits(key ^ MixBits(site + 0x632BE59BD9B4E019ull)), first_row};
}

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

#if defined(__x86_64__)
// GCC 12's own AVX-512 headers build shift intrinsics from a deliberately
// undefined vector (`__m512i __Y = __Y;`), which -Wall reports as "may be
// used uninitialized" inside this function; the warning is about the header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// The whole-hash part of FillKeyedDropoutMask, eight hashes (32 elements) at
// a time: words first_word .. first_word + words - 1 into mask[0, 4 * words).
// Returns how many words it did (a multiple of 8); the caller does the rest.
__attribute__((target("avx512f,avx512dq"))) int64_t WholeHashesAvx512(
    uint64_t key, uint64_t first_word, int64_t words, uint32_t threshold, float kept,
    float* mask) {
  const __m512i golden = _mm512_set1_epi64(static_cast<long long>(kGolden));
  const __m512i c1 = _mm512_set1_epi64(static_cast<long long>(0xBF58476D1CE4E5B9ull));
  const __m512i c2 = _mm512_set1_epi64(static_cast<long long>(0x94D049BB133111EBull));
  const __m512i k = _mm512_set1_epi64(static_cast<long long>(key));
  const __m512i plus_one = _mm512_setr_epi64(1, 2, 3, 4, 5, 6, 7, 8);
  const __m512i limit = _mm512_set1_epi32(static_cast<int>(threshold));
  const __m512 scale = _mm512_set1_ps(kept);
  int64_t w = 0;
  for (; w + 8 <= words; w += 8) {
    const __m512i word = _mm512_add_epi64(
        _mm512_set1_epi64(static_cast<long long>(first_word + static_cast<uint64_t>(w))),
        plus_one);
    __m512i z = _mm512_add_epi64(k, _mm512_mullo_epi64(word, golden));  // MixBits(...)
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), c1);
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), c2);
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
    // The 32 16-bit lanes in element order (bits 0-15 of hash j: element 4j).
    const __m512i lo = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(z));
    const __m512i hi = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(z, 1));
    _mm512_storeu_ps(mask + 4 * w, _mm512_maskz_mov_ps(_mm512_cmplt_epu32_mask(lo, limit), scale));
    _mm512_storeu_ps(mask + 4 * w + 16,
                     _mm512_maskz_mov_ps(_mm512_cmplt_epu32_mask(hi, limit), scale));
  }
  return w;
}
#pragma GCC diagnostic pop
#endif

}  // namespace

void FillKeyedDropoutMask(double p, const DropoutKey& key, int64_t row_size, int64_t n,
                          float* mask) {
  const float kept = static_cast<float>(1.0 / (1.0 - p));
  // Element g (the global index) keeps when its 16 bits of hash g / 4, as a
  // fraction of 2^16, fall below 1 - p: one hash per four elements (the
  // hashes were most of the dropout's cost, ~6% of a training step).
  const uint64_t threshold = static_cast<uint64_t>(std::llround((1.0 - p) * 65536.0));
  uint64_t g = static_cast<uint64_t>(key.first_row) * static_cast<uint64_t>(row_size);
  auto hash_of = [&](uint64_t word) { return MixBits(key.key + (word + 1) * kGolden); };
  // kept or 0 without a branch (a kept/dropped branch mispredicts p of the time).
  auto scale = [&](uint64_t bits16) { return static_cast<float>(bits16 < threshold) * kept; };
  int64_t i = 0;
  // The first hash's lanes from g % 4 on; then whole hashes; then the rest.
  if ((g & 3) != 0) {
    uint64_t h = hash_of(g >> 2) >> (16 * (g & 3));
    for (; (g & 3) != 0 && i < n; ++i, ++g, h >>= 16) {
      mask[i] = scale(h & 0xFFFF);
    }
  }
#if defined(__x86_64__)
  static const bool avx512 = HaveAvx512Dq();
  if (avx512 && i + 32 <= n) {
    const int64_t words = WholeHashesAvx512(key.key, g >> 2, (n - i) / 4,
                                            static_cast<uint32_t>(threshold), kept, mask + i);
    i += 4 * words;
    g += 4 * static_cast<uint64_t>(words);
  }
#endif
  for (; i + 4 <= n; i += 4, g += 4) {
    const uint64_t h = hash_of(g >> 2);
    mask[i] = scale(h & 0xFFFF);
    mask[i + 1] = scale((h >> 16) & 0xFFFF);
    mask[i + 2] = scale((h >> 32) & 0xFFFF);
    mask[i + 3] = scale(h >> 48);
  }
  if (i < n) {
    uint64_t h = hash_of(g >> 2);
    for (; i < n; ++i, h >>= 16) mask[i] = scale(h & 0xFFFF);
  }
}

torch::Tensor KeyedDropout(const torch::Tensor& x, double p, const DropoutKey& key) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout probability ", p, " not in [0, 1)");
  if (p == 0.0 || x.numel() == 0) return x;
  TORCH_CHECK(x.dim() >= 1, "keyed dropout needs rows along dim 0");
  const int64_t n = x.numel();
  torch::Tensor mask = torch::empty(x.sizes(), torch::TensorOptions().dtype(torch::kFloat));
  FillKeyedDropoutMask(p, key, n / x.size(0), n, mask.data_ptr<float>());
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat) {
    mask = mask.to(x.device(), x.scalar_type());
  }
  return x * mask;
}

}  // namespace recsys
