#include "model/nn/cpu_matmul.h"

#include <dlfcn.h>

#include <climits>
#include <cstring>

namespace recsys {
namespace {

// The Fortran BLAS interface (column-major), as LibTorch declares it.
using Sgemm = void (*)(const char* transa, const char* transb, const int* m, const int* n,
                       const int* k, const float* alpha, const float* a, const int* lda,
                       const float* b, const int* ldb, const float* beta, float* c,
                       const int* ldc);

Sgemm FindSgemm() {
  static const Sgemm sgemm = reinterpret_cast<Sgemm>(dlsym(RTLD_DEFAULT, "sgemm_"));
  return sgemm;
}

bool Direct(std::initializer_list<const torch::Tensor*> tensors) {
  if (FindSgemm() == nullptr) return false;
  for (const torch::Tensor* t : tensors) {
    // A product autograd should record goes to LibTorch.
    if (!t->device().is_cpu() || t->scalar_type() != torch::kFloat || !t->is_contiguous() ||
        t->dim() != 2 || (t->requires_grad() && at::GradMode::is_enabled())) {
      return false;
    }
    // Sizes of 1 change which strides LibTorch reads (and 0 what it calls).
    if (t->size(0) < 2 || t->size(1) < 2 || t->size(0) > INT_MAX || t->size(1) > INT_MAX) {
      return false;
    }
  }
  return true;
}

// Column-major C[m, n] = op(A) · op(B) + beta C, as LibTorch's cpublas::gemm
// hands it to sgemm_ for these sizes.
void Gemm(char transa, char transb, int64_t m, int64_t n, int64_t k, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const int m_ = static_cast<int>(m), n_ = static_cast<int>(n), k_ = static_cast<int>(k);
  const int lda_ = static_cast<int>(lda), ldb_ = static_cast<int>(ldb),
            ldc_ = static_cast<int>(ldc);
  const float alpha = 1.0f;
  FindSgemm()(&transa, &transb, &m_, &n_, &k_, &alpha, a, &lda_, b, &ldb_, &beta, c, &ldc_);
}

}  // namespace

// The row-major products below are the column-major ones of their
// transposes (Cᵀ = op(B)ᵀ op(A)ᵀ): LibTorch's addmm swaps the operands the
// same way for a contiguous output, and these are its transpose flags and
// leading dimensions for contiguous inputs.

torch::Tensor LinearRows(const torch::Tensor& x, const torch::Tensor& w,
                         const torch::Tensor& bias) {
  const bool bias_ok = bias.defined() && bias.device().is_cpu() &&
                       bias.scalar_type() == torch::kFloat && bias.is_contiguous() &&
                       bias.dim() == 1 && !(bias.requires_grad() && at::GradMode::is_enabled());
  if (!bias_ok || !Direct({&x, &w}) || x.size(1) != w.size(1) || bias.size(0) != w.size(0)) {
    return torch::addmm(bias, x, w.t());
  }
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  torch::Tensor y = torch::empty({M, N}, torch::kFloat);
  float* yp = y.data_ptr<float>();
  const float* bp = bias.data_ptr<float>();
  for (int64_t r = 0; r < M; ++r) std::memcpy(yp + r * N, bp, N * sizeof(float));
  Gemm('T', 'N', N, M, K, w.data_ptr<float>(), K, x.data_ptr<float>(), K, 1.0f, yp, N);
  return y;
}

torch::Tensor MatmulTransposeA(const torch::Tensor& a, const torch::Tensor& b) {
  if (!Direct({&a, &b}) || a.size(0) != b.size(0)) return torch::mm(a.t(), b);
  const int64_t M = a.size(0), N = a.size(1), K = b.size(1);
  torch::Tensor c = torch::empty({N, K}, torch::kFloat);
  Gemm('N', 'T', K, N, M, b.data_ptr<float>(), K, a.data_ptr<float>(), N, 0.0f,
       c.data_ptr<float>(), K);
  return c;
}

torch::Tensor Matmul(const torch::Tensor& a, const torch::Tensor& b) {
  if (!Direct({&a, &b}) || a.size(1) != b.size(0)) return torch::mm(a, b);
  const int64_t M = a.size(0), N = a.size(1), K = b.size(1);
  torch::Tensor c = torch::empty({M, K}, torch::kFloat);
  Gemm('N', 'N', K, M, N, b.data_ptr<float>(), K, a.data_ptr<float>(), N, 0.0f,
       c.data_ptr<float>(), K);
  return c;
}

void AddMatmulInPlace(const torch::Tensor& acc, const torch::Tensor& a, const torch::Tensor& b) {
  if (!Direct({&acc, &a, &b}) || a.size(1) != b.size(0) || acc.size(0) != a.size(0) ||
      acc.size(1) != b.size(1)) {
    acc.addmm_(a, b);
    return;
  }
  const int64_t M = a.size(0), N = a.size(1), K = b.size(1);
  Gemm('N', 'N', K, M, N, b.data_ptr<float>(), K, a.data_ptr<float>(), N, 1.0f,
       acc.data_ptr<float>(), K);
}

void AddMatmulTransposeAInPlace(const torch::Tensor& acc, const torch::Tensor& a,
                                const torch::Tensor& b) {
  if (!Direct({&acc, &a, &b}) || a.size(0) != b.size(0) || acc.size(0) != a.size(1) ||
      acc.size(1) != b.size(1)) {
    acc.addmm_(a.t(), b);
    return;
  }
  const int64_t M = a.size(0), N = a.size(1), K = b.size(1);
  Gemm('N', 'T', K, N, M, b.data_ptr<float>(), K, a.data_ptr<float>(), N, 1.0f,
       acc.data_ptr<float>(), K);
}

bool CpuMatmulUsesBlas() { return FindSgemm() != nullptr; }

}  // namespace recsys
