// What the CPU this process runs on can do, for kernels that pick an
// instruction set at run time (retrieval/distance_kernels.cc,
// server/user_encoder_kernel.cc, model/nn/keyed_dropout.cc). x86-64 only; elsewhere everything is
// false and callers take their portable paths.
#ifndef RECSYS_COMMON_CPU_FEATURES_H_
#define RECSYS_COMMON_CPU_FEATURES_H_

namespace recsys {

// AVX2 and FMA (Haswell and later; every x86-64 server of the last decade).
inline bool HaveAvx2Fma() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

// AVX-512 F and DQ (64-bit lane multiplies; Skylake-SP and later, Zen 4).
inline bool HaveAvx512Dq() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

}  // namespace recsys

#endif  // RECSYS_COMMON_CPU_FEATURES_H_
