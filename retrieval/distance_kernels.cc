#include "retrieval/distance_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/cpu_features.h"

namespace recsys {
namespace retrieval {

namespace portable {

float InnerProduct(const float* a, const float* b, int d) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int j = 0;
  for (; j + 4 <= d; j += 4) {
    s0 += a[j] * b[j];
    s1 += a[j + 1] * b[j + 1];
    s2 += a[j + 2] * b[j + 2];
    s3 += a[j + 3] * b[j + 3];
  }
  for (; j < d; ++j) s0 += a[j] * b[j];
  return (s0 + s1) + (s2 + s3);
}

float L2Squared(const float* a, const float* b, int d) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int j = 0;
  for (; j + 4 <= d; j += 4) {
    const float t0 = a[j] - b[j], t1 = a[j + 1] - b[j + 1];
    const float t2 = a[j + 2] - b[j + 2], t3 = a[j + 3] - b[j + 3];
    s0 += t0 * t0;
    s1 += t1 * t1;
    s2 += t2 * t2;
    s3 += t3 * t3;
  }
  for (; j < d; ++j) s0 += (a[j] - b[j]) * (a[j] - b[j]);
  return (s0 + s1) + (s2 + s3);
}

void InnerProductMany(const float* q, const float* base, int64_t n, int d,
                      float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = InnerProduct(q, base + i * d, d);
}

void L2SquaredMany(const float* q, const float* base, int64_t n, int d,
                   float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = L2Squared(q, base + i * d, d);
}

void InnerProductBlock(const float* queries, int64_t nq, const float* rows,
                       int64_t m, int d, float* out) {
  for (int64_t q = 0; q < nq; ++q) InnerProductMany(queries + q * d, rows, m, d, out + q * m);
}

int64_t FirstAbove(const float* s, int64_t n, float threshold) {
  int64_t i = 0;
  while (i < n && !(s[i] > threshold)) ++i;
  return i;
}

float InnerProductInt8(const float* scaled_q, const int8_t* codes, int d) {
  float s0 = 0, s1 = 0;
  int j = 0;
  for (; j + 2 <= d; j += 2) {
    s0 += scaled_q[j] * codes[j];
    s1 += scaled_q[j + 1] * codes[j + 1];
  }
  for (; j < d; ++j) s0 += scaled_q[j] * codes[j];
  return s0 + s1;
}

float L2SquaredInt8(const float* q, const float* scale, const int8_t* codes,
                    int d) {
  float s = 0;
  for (int j = 0; j < d; ++j) {
    const float t = codes[j] * scale[j] - q[j];
    s += t * t;
  }
  return s;
}

}  // namespace portable

#if defined(__x86_64__)
namespace {

// Sums each of four 8-lane accumulators: {sum(a0), sum(a1), sum(a2), sum(a3)}.
__attribute__((target("avx2,fma"))) inline __m128 Sum4(__m256 a0, __m256 a1,
                                                        __m256 a2, __m256 a3) {
  const __m256 h01 = _mm256_hadd_ps(a0, a1);
  const __m256 h23 = _mm256_hadd_ps(a2, a3);
  const __m256 h = _mm256_hadd_ps(h01, h23);
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

__attribute__((target("avx2,fma"))) inline float Sum1(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// kL2 false: inner product; true: squared L2 distance.
template <bool kL2>
__attribute__((target("avx2,fma"))) inline __m256 Step(__m256 acc, __m256 q,
                                                       const float* b) {
  const __m256 v = _mm256_loadu_ps(b);
  if (kL2) {
    const __m256 t = _mm256_sub_ps(v, q);
    return _mm256_fmadd_ps(t, t, acc);
  }
  return _mm256_fmadd_ps(q, v, acc);
}

template <bool kL2>
inline float Tail(const float* a, const float* b, int from, int d) {
  float s = 0;
  for (int j = from; j < d; ++j) {
    s += kL2 ? (a[j] - b[j]) * (a[j] - b[j]) : a[j] * b[j];
  }
  return s;
}

template <bool kL2>
__attribute__((target("avx2,fma"))) float OneAvx2(const float* a,
                                                  const float* b, int d) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int j = 0;
  for (; j + 16 <= d; j += 16) {
    acc0 = Step<kL2>(acc0, _mm256_loadu_ps(a + j), b + j);
    acc1 = Step<kL2>(acc1, _mm256_loadu_ps(a + j + 8), b + j + 8);
  }
  for (; j + 8 <= d; j += 8) {
    acc0 = Step<kL2>(acc0, _mm256_loadu_ps(a + j), b + j);
  }
  return Sum1(_mm256_add_ps(acc0, acc1)) + Tail<kL2>(a, b, j, d);
}

// Four database rows per pass: the query lanes are loaded once per four
// rows and the four horizontal sums share one reduction.
template <bool kL2>
__attribute__((target("avx2,fma"))) void ManyAvx2(const float* q,
                                                  const float* base, int64_t n,
                                                  int d, float* out) {
  const int d8 = d & ~7;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float* b0 = base + i * d;
    const float* b1 = b0 + d;
    const float* b2 = b1 + d;
    const float* b3 = b2 + d;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int j = 0; j < d8; j += 8) {
      const __m256 qv = _mm256_loadu_ps(q + j);
      a0 = Step<kL2>(a0, qv, b0 + j);
      a1 = Step<kL2>(a1, qv, b1 + j);
      a2 = Step<kL2>(a2, qv, b2 + j);
      a3 = Step<kL2>(a3, qv, b3 + j);
    }
    __m128 s = Sum4(a0, a1, a2, a3);
    if (d8 != d) {
      s = _mm_add_ps(s, _mm_setr_ps(Tail<kL2>(q, b0, d8, d),
                                    Tail<kL2>(q, b1, d8, d),
                                    Tail<kL2>(q, b2, d8, d),
                                    Tail<kL2>(q, b3, d8, d)));
    }
    _mm_storeu_ps(out + i, s);
  }
  for (; i < n; ++i) out[i] = OneAvx2<kL2>(q, base + i * d, d);
}

// kQ queries x four rows per pass: each row chunk is loaded once for all
// kQ queries, with kQ x 4 accumulators: up to three fill AVX2's sixteen
// registers (measured: ~1.7x the rate of three ManyAvx2 calls on 64-d
// rows), up to six AVX-512VL's thirty-two (~12% faster again on 64-d rows,
// 18 queries, on this machine's AMD EPYC). Every score is summed exactly as
// ManyAvx2 sums it (same lanes, same Sum4), so every pass gives the same
// bits. Always inlined: the caller's target decides which registers the
// accumulators may use.
template <int kQ>
__attribute__((target("avx2,fma"), always_inline)) inline void PassAvx2(
    const float* qs, const float* rows, int64_t m, int d, float* o) {
  const int d8 = d & ~7;
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) {
    const float* b0 = rows + i * d;
    __m256 acc[kQ][4];
    _Pragma("GCC unroll 8") for (int s = 0; s < kQ; ++s) {
      _Pragma("GCC unroll 4") for (int r = 0; r < 4; ++r) acc[s][r] = _mm256_setzero_ps();
    }
    for (int j = 0; j < d8; j += 8) {
      __m256 qv[kQ];
      _Pragma("GCC unroll 8") for (int s = 0; s < kQ; ++s) qv[s] = _mm256_loadu_ps(qs + s * d + j);
      _Pragma("GCC unroll 4") for (int r = 0; r < 4; ++r) {
        const __m256 rv = _mm256_loadu_ps(b0 + r * d + j);
        _Pragma("GCC unroll 8") for (int s = 0; s < kQ; ++s) {
          acc[s][r] = _mm256_fmadd_ps(qv[s], rv, acc[s][r]);
        }
      }
    }
    _Pragma("GCC unroll 8") for (int s = 0; s < kQ; ++s) {
      __m128 sum = Sum4(acc[s][0], acc[s][1], acc[s][2], acc[s][3]);
      if (d8 != d) {
        const float* x = qs + s * d;
        sum = _mm_add_ps(sum, _mm_setr_ps(Tail<false>(x, b0, d8, d),
                                          Tail<false>(x, b0 + d, d8, d),
                                          Tail<false>(x, b0 + 2 * d, d8, d),
                                          Tail<false>(x, b0 + 3 * d, d8, d)));
      }
      _mm_storeu_ps(o + s * m + i, sum);
    }
  }
  for (; i < m; ++i) {
    for (int s = 0; s < kQ; ++s) o[s * m + i] = OneAvx2<false>(qs + s * d, rows + i * d, d);
  }
}

// Triples, then a remaining pair together, a last query alone.
__attribute__((target("avx2,fma"))) void InnerProductBlockAvx2(
    const float* queries, int64_t nq, const float* rows, int64_t m, int d,
    float* out) {
  int64_t q = 0;
  for (; q + 3 <= nq; q += 3) PassAvx2<3>(queries + q * d, rows, m, d, out + q * m);
  if (nq - q == 2) {
    PassAvx2<2>(queries + q * d, rows, m, d, out + q * m);
    q += 2;
  }
  for (; q < nq; ++q) ManyAvx2<false>(queries + q * d, rows, m, d, out + q * m);
}

// Sixes, then a batch's remainder in one pass of its size.
__attribute__((target("avx2,fma,avx512f,avx512vl"))) void InnerProductBlockAvx512Vl(
    const float* queries, int64_t nq, const float* rows, int64_t m, int d, float* out) {
  int64_t q = 0;
  for (; q + 6 <= nq; q += 6) PassAvx2<6>(queries + q * d, rows, m, d, out + q * m);
  const float* qs = queries + q * d;
  float* o = out + q * m;
  switch (nq - q) {
    case 5: PassAvx2<5>(qs, rows, m, d, o); break;
    case 4: PassAvx2<4>(qs, rows, m, d, o); break;
    case 3: PassAvx2<3>(qs, rows, m, d, o); break;
    case 2: PassAvx2<2>(qs, rows, m, d, o); break;
    case 1: PassAvx2<1>(qs, rows, m, d, o); break;
    default: break;
  }
}

__attribute__((target("avx2,fma"))) int64_t FirstAboveAvx2(const float* s,
                                                            int64_t n,
                                                            float threshold) {
  const __m256 t = _mm256_set1_ps(threshold);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const int mask =
        _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + i), t, _CMP_GT_OQ));
    if (mask != 0) return i + __builtin_ctz(mask);
  }
  return i + portable::FirstAbove(s + i, n - i, threshold);
}

__attribute__((target("avx2,fma,f16c"))) void FloatToHalfF16c(
    const float* in, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(in + i),
                                     _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) {
    out[i] = static_cast<uint16_t>(_cvtss_sh(in[i], _MM_FROUND_TO_NEAREST_INT));
  }
}

// Rows stored compactly, decoded eight values at a time (Load8) or one
// (At), for CompactAvx2.
struct HalfRow {
  const uint16_t* v;
  __attribute__((target("avx2,fma,f16c"))) __m256 Load8(int j) const {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + j)));
  }
  __attribute__((target("avx2,fma,f16c"))) float At(int j) const {
    return _cvtsh_ss(v[j]);
  }
};

// Int8 codes times a per-dimension scale, or the bare codes when `scale`
// is null (inner products fold the scale into the query).
struct Int8Row {
  const int8_t* c;
  const float* scale;
  __attribute__((target("avx2,fma,f16c"))) __m256 Load8(int j) const {
    const __m256 codes = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + j))));
    return scale == nullptr ? codes
                            : _mm256_mul_ps(codes, _mm256_loadu_ps(scale + j));
  }
  float At(int j) const { return scale == nullptr ? c[j] : c[j] * scale[j]; }
};

// Inner product or squared L2 between a float query and a compact row.
template <bool kL2, typename Row>
__attribute__((target("avx2,fma,f16c"))) float CompactAvx2(const float* q,
                                                          const Row& row,
                                                          int d) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int j = 0;
  for (; j + 16 <= d; j += 16) {
    const __m256 v0 = row.Load8(j), v1 = row.Load8(j + 8);
    const __m256 q0 = _mm256_loadu_ps(q + j), q1 = _mm256_loadu_ps(q + j + 8);
    if (kL2) {
      const __m256 t0 = _mm256_sub_ps(v0, q0), t1 = _mm256_sub_ps(v1, q1);
      acc0 = _mm256_fmadd_ps(t0, t0, acc0);
      acc1 = _mm256_fmadd_ps(t1, t1, acc1);
    } else {
      acc0 = _mm256_fmadd_ps(q0, v0, acc0);
      acc1 = _mm256_fmadd_ps(q1, v1, acc1);
    }
  }
  float s = Sum1(_mm256_add_ps(acc0, acc1));
  for (; j < d; ++j) {
    const float x = row.At(j);
    s += kL2 ? (x - q[j]) * (x - q[j]) : x * q[j];
  }
  return s;
}

// CompactAvx2 is compiled for F16C as well, so these run only where
// HalfAvailable() (every AVX2 CPU so far has F16C; others get the portable
// loops).
float InnerProductInt8Avx2(const float* scaled_q, const int8_t* codes, int d) {
  return CompactAvx2<false>(scaled_q, Int8Row{codes, nullptr}, d);
}

float L2SquaredInt8Avx2(const float* q, const float* scale,
                        const int8_t* codes, int d) {
  return CompactAvx2<true>(q, Int8Row{codes, scale}, d);
}

}  // namespace
#endif  // __x86_64__

namespace {

struct Kernels {
  const char* name;
  float (*ip)(const float*, const float*, int);
  float (*l2)(const float*, const float*, int);
  void (*ip_many)(const float*, const float*, int64_t, int, float*);
  void (*l2_many)(const float*, const float*, int64_t, int, float*);
  void (*ip_block)(const float*, int64_t, const float*, int64_t, int, float*);
  int64_t (*first_above)(const float*, int64_t, float);
  float (*ip_int8)(const float*, const int8_t*, int);
  float (*l2_int8)(const float*, const float*, const int8_t*, int);
};

Kernels Pick() {
#if defined(__x86_64__)
  if (HaveAvx2Fma()) {
    const bool f16c = __builtin_cpu_supports("f16c");
    const bool vl = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    return {vl ? "avx2+fma+avx512vl" : "avx2+fma",
            &OneAvx2<false>,
            &OneAvx2<true>,
            &ManyAvx2<false>,
            &ManyAvx2<true>,
            vl ? &InnerProductBlockAvx512Vl : &InnerProductBlockAvx2,
            &FirstAboveAvx2,
            f16c ? &InnerProductInt8Avx2 : &portable::InnerProductInt8,
            f16c ? &L2SquaredInt8Avx2 : &portable::L2SquaredInt8};
  }
#endif
  return {"portable",
          &portable::InnerProduct,
          &portable::L2Squared,
          &portable::InnerProductMany,
          &portable::L2SquaredMany,
          &portable::InnerProductBlock,
          &portable::FirstAbove,
          &portable::InnerProductInt8,
          &portable::L2SquaredInt8};
}

const Kernels& Get() {
  static const Kernels kernels = Pick();
  return kernels;
}

}  // namespace

const char* DistanceKernelName() { return Get().name; }

bool HalfAvailable() {
#if defined(__x86_64__)
  static const bool ok = HaveAvx2Fma() && __builtin_cpu_supports("f16c");
  return ok;
#else
  return false;
#endif
}

#if defined(__x86_64__)
void FloatToHalf(const float* in, int64_t n, uint16_t* out) {
  FloatToHalfF16c(in, n, out);
}
float InnerProductHalf(const float* q, const uint16_t* v, int d) {
  return CompactAvx2<false>(q, HalfRow{v}, d);
}
float L2SquaredHalf(const float* q, const uint16_t* v, int d) {
  return CompactAvx2<true>(q, HalfRow{v}, d);
}
#else
void FloatToHalf(const float*, int64_t, uint16_t*) {}
float InnerProductHalf(const float*, const uint16_t*, int) { return 0; }
float L2SquaredHalf(const float*, const uint16_t*, int) { return 0; }
#endif

float InnerProduct(const float* a, const float* b, int d) {
  return Get().ip(a, b, d);
}

float L2Squared(const float* a, const float* b, int d) {
  return Get().l2(a, b, d);
}

void InnerProductMany(const float* q, const float* base, int64_t n, int d,
                      float* out) {
  Get().ip_many(q, base, n, d, out);
}

void L2SquaredMany(const float* q, const float* base, int64_t n, int d,
                   float* out) {
  Get().l2_many(q, base, n, d, out);
}

void InnerProductBlock(const float* queries, int64_t nq, const float* rows,
                       int64_t m, int d, float* out) {
  Get().ip_block(queries, nq, rows, m, d, out);
}

int64_t FirstAbove(const float* s, int64_t n, float threshold) {
  return Get().first_above(s, n, threshold);
}

float InnerProductInt8(const float* scaled_q, const int8_t* codes, int d) {
  return Get().ip_int8(scaled_q, codes, d);
}

float L2SquaredInt8(const float* q, const float* scale, const int8_t* codes,
                    int d) {
  return Get().l2_int8(q, scale, codes, d);
}

}  // namespace retrieval
}  // namespace recsys
