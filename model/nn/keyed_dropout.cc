#include "model/nn/keyed_dropout.h"

namespace recsys {

uint64_t MixBits(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

DropoutKey DropoutKey::Site(uint64_t site) const {
  return DropoutKey{MixBits(key ^ MixBits(site + 0x632BE59BD9B4E019ull)), first_row};
}

torch::Tensor KeyedDropout(const torch::Tensor& x, double p, const DropoutKey& key) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout probability ", p, " not in [0, 1)");
  if (p == 0.0 || x.numel() == 0) return x;
  TORCH_CHECK(x.dim() >= 1, "keyed dropout needs rows along dim 0");
  const int64_t n = x.numel();
  const uint64_t row_size = static_cast<uint64_t>(n / x.size(0));
  torch::Tensor mask = torch::empty(x.sizes(), torch::TensorOptions().dtype(torch::kFloat));
  float* m = mask.data_ptr<float>();
  const float kept = static_cast<float>(1.0 / (1.0 - p));
  // Keep when the top 53 bits, as a fraction of 2^53, fall below 1 - p.
  const uint64_t threshold = static_cast<uint64_t>((1.0 - p) * 9007199254740992.0);
  const uint64_t first = static_cast<uint64_t>(key.first_row) * row_size;
  constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t h = MixBits(key.key + (first + static_cast<uint64_t>(i) + 1) * kGolden);
    m[i] = (h >> 11) < threshold ? kept : 0.0f;
  }
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat) {
    mask = mask.to(x.device(), x.scalar_type());
  }
  return x * mask;
}

}  // namespace recsys
