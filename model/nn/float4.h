// Four floats as one SSE register (x86-64's baseline; NEON on ARM), for the
// fused training kernels' loops (fused_block.cc, fused_intra_path.cc).
//
// Why: the build targets baseline x86-64 at -O2, where the compiler leaves
// these loops scalar: a float reduction may not be reordered without
// -ffast-math, and a loop of unknown length needs an epilogue that -O2's
// cost model does not allow. GCC / Clang vector extensions make the 4-wide
// form explicit without target flags or runtime dispatch.
#ifndef RECSYS_MODEL_NN_FLOAT4_H_
#define RECSYS_MODEL_NN_FLOAT4_H_

#include <cstdint>
#include <cstring>

namespace recsys {

typedef float Float4 __attribute__((vector_size(16)));

inline Float4 Load4(const float* p) {
  Float4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void Store4(float* p, Float4 v) { std::memcpy(p, &v, sizeof v); }

// sum_j a[j] * b[j] (summed in another order than a scalar loop's).
inline float Dot(const float* a, const float* b, int64_t n) {
  Float4 s0 = {0, 0, 0, 0}, s1 = {0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    s0 += Load4(a + j) * Load4(b + j);
    s1 += Load4(a + j + 4) * Load4(b + j + 4);
  }
  for (; j + 4 <= n; j += 4) s0 += Load4(a + j) * Load4(b + j);
  const Float4 s = s0 + s1;
  float out = (s[0] + s[1]) + (s[2] + s[3]);
  for (; j < n; ++j) out += a[j] * b[j];
  return out;
}

// y[j] += alpha * x[j].
inline void Axpy(float alpha, const float* x, float* y, int64_t n) {
  const Float4 a = {alpha, alpha, alpha, alpha};
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) Store4(y + j, Load4(y + j) + a * Load4(x + j));
  for (; j < n; ++j) y[j] += alpha * x[j];
}

}  // namespace recsys

#endif  // RECSYS_MODEL_NN_FLOAT4_H_
