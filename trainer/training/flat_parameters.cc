#include "trainer/training/flat_parameters.h"

namespace recsys {

torch::Tensor FlattenParameters(const std::vector<torch::Tensor>& params) {
  TORCH_CHECK(!params.empty(), "no parameters to flatten");
  int64_t total = 0;
  for (const torch::Tensor& p : params) {
    TORCH_CHECK(p.defined() && p.requires_grad(), "parameters must be defined and require grad");
    TORCH_CHECK(p.scalar_type() == params[0].scalar_type() &&
                    p.device() == params[0].device(),
                "parameters of one dtype and device expected");
    total += p.numel();
  }
  torch::NoGradGuard no_grad;
  torch::Tensor flat = torch::empty({total}, params[0].options().requires_grad(false));
  torch::Tensor grad = torch::zeros({total}, params[0].options().requires_grad(false));
  int64_t offset = 0;
  for (const torch::Tensor& p : params) {
    const int64_t n = p.numel();
    torch::Tensor slot = flat.narrow(0, offset, n).view(p.sizes());
    slot.copy_(p);
    // set_data swaps the storage under the same tensor object, so every
    // handle to the parameter (module members, named_parameters) follows.
    torch::Tensor(p).set_data(slot);
    torch::Tensor(p).mutable_grad() = grad.narrow(0, offset, n).view(p.sizes());
    offset += n;
  }
  flat.requires_grad_(true);
  flat.mutable_grad() = grad;
  return flat;
}

}  // namespace recsys
