// Distance kernels for exact vector scans, picked once at startup for the
// CPU we run on.
//
// Debian's FAISS 1.7.3 is built for generic x86-64: its single-query Flat
// scan and its HNSW distance computer run the scalar
// fvec_inner_product_ref loop (seen in gdb and perf). These kernels use
// AVX2 + FMA when the CPU has them (checked at runtime, so the binary still
// runs on older CPUs) and a portable loop otherwise.
//
// Results match a double-precision reference to float rounding, but the
// summation order differs from FAISS's, so scores may differ from
// IndexFlat's in the last bits.
//
// Thread-safety: all functions are pure.
#ifndef RECSYS_RETRIEVAL_DISTANCE_KERNELS_H_
#define RECSYS_RETRIEVAL_DISTANCE_KERNELS_H_

#include <cstdint>

namespace recsys {
namespace retrieval {

// "avx2+fma" or "portable": what this process uses.
const char* DistanceKernelName();

float InnerProduct(const float* a, const float* b, int d);
float L2Squared(const float* a, const float* b, int d);

// out[i] = InnerProduct(q, base + i * d, d) for i in [0, n).
void InnerProductMany(const float* q, const float* base, int64_t n, int d,
                      float* out);
// out[i] = L2Squared(q, base + i * d, d) for i in [0, n).
void L2SquaredMany(const float* q, const float* base, int64_t n, int d,
                   float* out);

// Inner products of nq queries with m rows (several queries against one
// block of rows, as a batched Flat scan does):
//   out[q * m + i] = InnerProduct(queries + q * d, rows + i * d, d)
// for q in [0, nq), i in [0, m). The AVX2 version scores three queries
// against four rows per pass (each row loaded once for the three), about
// 1.7x the rate of nq InnerProductMany calls from 3 queries up, and a
// remaining pair two at a time; with AVX-512VL six queries per pass
// first. Each score has the same bits as InnerProductMany's.
void InnerProductBlock(const float* queries, int64_t nq, const float* rows,
                       int64_t m, int d, float* out);

// The first i in [0, n) with s[i] > threshold, or n.
int64_t FirstAbove(const float* s, int64_t n, float threshold);

// Half-precision (IEEE fp16) rows, for approximate graph walks that rerank
// with the exact float rows. Available only with F16C (HalfAvailable());
// the functions must not be called otherwise.
bool HalfAvailable();
void FloatToHalf(const float* in, int64_t n, uint16_t* out);
float InnerProductHalf(const float* q, const uint16_t* v, int d);
float L2SquaredHalf(const float* q, const uint16_t* v, int d);

// 8-bit rows for the same purpose, on any CPU: row value j is
// codes[j] * scale[j] (a symmetric per-dimension scale). Callers fold the
// scale into the query for inner products:
//   InnerProductInt8(q * scale, codes, d) == sum_j q[j] * codes[j] * scale[j]
//   L2SquaredInt8(q, scale, codes, d)    == sum_j (codes[j] * scale[j] - q[j])^2
float InnerProductInt8(const float* scaled_q, const int8_t* codes, int d);
float L2SquaredInt8(const float* q, const float* scale, const int8_t* codes,
                    int d);

// The portable versions, always available (tests compare against them).
namespace portable {
float InnerProduct(const float* a, const float* b, int d);
float L2Squared(const float* a, const float* b, int d);
void InnerProductMany(const float* q, const float* base, int64_t n, int d,
                      float* out);
void L2SquaredMany(const float* q, const float* base, int64_t n, int d,
                   float* out);
void InnerProductBlock(const float* queries, int64_t nq, const float* rows,
                       int64_t m, int d, float* out);
int64_t FirstAbove(const float* s, int64_t n, float threshold);
float InnerProductInt8(const float* scaled_q, const int8_t* codes, int d);
float L2SquaredInt8(const float* q, const float* scale, const int8_t* codes,
                    int d);
}  // namespace portable

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_DISTANCE_KERNELS_H_
