// Small LibTorch helpers shared by the backbones: device parsing and
// c10::Error -> absl::Status. Includes LibTorch.
#ifndef RECSYS_MODEL_ENCODERS_TORCH_UTIL_H_
#define RECSYS_MODEL_ENCODERS_TORCH_UTIL_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/logging.h"

// LibTorch's headers redefine LOG as glog's macro (which this project does
// not link); translation units that include LibTorch log through this one.
#define TORCH_TU_LOG(level)                                                   \
  ::recsys::logging_internal::LogMessage(RECSYS_LOG_LEVEL_##level, __FILE__, \
                                         __LINE__)                          \
      .stream()

namespace recsys {

// "cpu", "cuda", "cuda:N". INVALID_ARGUMENT for anything else;
// FAILED_PRECONDITION for CUDA when LibTorch sees no GPU.
absl::StatusOr<torch::Device> ParseDevice(const std::string& device);

// INTERNAL status carrying the first line of a LibTorch error.
absl::Status TorchErrorToStatus(const std::exception& e,
                                const std::string& what);

// Token id sequences as one right-padded batch: ([B, T] ids filled with
// pad_id, [B, T] attention mask of 1 on real tokens), T = the longest
// sequence. Long CPU tensors.
struct TokenBatch {
  torch::Tensor ids;
  torch::Tensor mask;
};
TokenBatch PadTokenBatch(const std::vector<const std::vector<int64_t>*>& seqs,
                         int64_t pad_id);

// Mean over the positions where mask is 1: hidden [B, T, D] float, mask
// [B, T] (0/1, any dtype, at least one 1 per row) -> [B, D] float.
torch::Tensor MaskedMean(const torch::Tensor& hidden, const torch::Tensor& mask);

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_TORCH_UTIL_H_
