#include "model/encoders/torch_util.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "model/encoders/torch_runtime.h"

namespace recsys {

absl::StatusOr<torch::Device> ParseDevice(const std::string& device) {
  if (device != "cpu" && device.rfind("cuda", 0) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device must be cpu, cuda or cuda:N, got '", device, "'"));
  }
  try {
    torch::Device d(device);
    if (d.is_cuda() && !torch::cuda::is_available()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "device ", device, " requested but LibTorch sees no CUDA GPU"));
    }
    return d;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device must be cpu, cuda or cuda:N, got '", device, "'"));
  }
}

absl::Status TorchErrorToStatus(const std::exception& e,
                                const std::string& what) {
  std::string msg = e.what();
  const size_t nl = msg.find('\n');
  if (nl != std::string::npos) msg.resize(nl);
  return absl::InternalError(absl::StrCat(what, ": ", msg));
}

}  // namespace recsys

namespace recsys {

void SetTorchThreads(int n) {
  if (n > 0) torch::set_num_threads(n);
}

int TorchThreads() { return torch::get_num_threads(); }

TokenBatch PadTokenBatch(const std::vector<const std::vector<int64_t>*>& seqs,
                         int64_t pad_id) {
  const int64_t b = static_cast<int64_t>(seqs.size());
  size_t t = 0;
  for (const std::vector<int64_t>* s : seqs) t = std::max(t, s->size());
  TokenBatch out{torch::full({b, static_cast<int64_t>(t)}, pad_id, torch::kLong),
                 torch::zeros({b, static_cast<int64_t>(t)}, torch::kLong)};
  auto ids = out.ids.accessor<int64_t, 2>();
  auto mask = out.mask.accessor<int64_t, 2>();
  for (int64_t k = 0; k < b; ++k) {
    for (size_t j = 0; j < seqs[k]->size(); ++j) {
      ids[k][j] = (*seqs[k])[j];
      mask[k][j] = 1;
    }
  }
  return out;
}

torch::Tensor MaskedMean(const torch::Tensor& hidden, const torch::Tensor& mask) {
  const torch::Tensor m = mask.to(hidden.device(), hidden.scalar_type()).unsqueeze(-1);
  return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0);
}

}  // namespace recsys
