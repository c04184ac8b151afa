// Float matrix products on the CPU for the fused training kernels
// (fused_block.cc, fused_intra_path.cc), handed straight to the BLAS's
// sgemm_ with the arguments LibTorch's addmm / mm pass it for these
// layouts, so the results are the same bits. What it saves per call
// (~5-10 us here, ~55 calls in each row shard of a training step): the
// dispatcher, the transposed views, and addmm's copy of the bias (or of the
// tensor it adds to) into a new output.
//
// Where the process has no sgemm_ symbol (a LibTorch linked to MKL
// statically), or an input is not a contiguous 2-D float CPU tensor, or a
// size is 0 or over BLAS's int, each function calls the LibTorch op it
// names instead: the same result, at LibTorch's cost.
//
// Thread-safety: reentrant; the BLAS's own threads are as configured
// (trainer/training/torch_threads.h sets OpenBLAS's to the trainer's).
#ifndef RECSYS_MODEL_NN_CPU_MATMUL_H_
#define RECSYS_MODEL_NN_CPU_MATMUL_H_

#include <torch/torch.h>

namespace recsys {

// x · wᵀ + bias, as torch::addmm(bias, x, w.t()): x [M, K], w [N, K],
// bias [N] -> [M, N].
torch::Tensor LinearRows(const torch::Tensor& x, const torch::Tensor& w,
                         const torch::Tensor& bias);

// aᵀ · b, as torch::mm(a.t(), b): a [M, N], b [M, K] -> [N, K] (a weight's
// gradient from its output's gradient a and its input b).
torch::Tensor MatmulTransposeA(const torch::Tensor& a, const torch::Tensor& b);

// a · b, as torch::mm(a, b): a [M, N], b [N, K] -> [M, K].
torch::Tensor Matmul(const torch::Tensor& a, const torch::Tensor& b);

// acc += a · b, as acc.addmm_(a, b): the bits torch::addmm(acc, a, b)
// returns, without its copy of acc. acc [M, K], a [M, N], b [N, K].
void AddMatmulInPlace(const torch::Tensor& acc, const torch::Tensor& a, const torch::Tensor& b);

// acc += aᵀ · b, as acc.addmm_(a.t(), b) (a weight's gradient added into
// a gradient buffer). acc [N, K], a [M, N], b [M, K].
void AddMatmulTransposeAInPlace(const torch::Tensor& acc, const torch::Tensor& a,
                                const torch::Tensor& b);

// Whether the functions above reach sgemm_ directly in this process.
bool CpuMatmulUsesBlas();

}  // namespace recsys

#endif  // RECSYS_MODEL_NN_CPU_MATMUL_H_
