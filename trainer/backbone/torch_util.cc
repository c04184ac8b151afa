#include "trainer/backbone/torch_util.h"

#include "absl/strings/str_cat.h"
#include "trainer/backbone/torch_runtime.h"

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

}  // namespace recsys
