#include "model/nn/keyed_dropout.h"

#include <cmath>

namespace recsys {

uint64_t MixBits(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

DropoutKey DropoutKey::Site(uint64_t site) const {
  return DropoutKey{MixBits(key ^ MixBits(site + 0x632BE59BD9B4E019ull)), first_row};
}

void FillKeyedDropoutMask(double p, const DropoutKey& key, int64_t row_size, int64_t n,
                          float* mask) {
  const float kept = static_cast<float>(1.0 / (1.0 - p));
  // Element g (the global index) keeps when its 16 bits of hash g / 4, as a
  // fraction of 2^16, fall below 1 - p: one hash per four elements (the
  // hashes were most of the dropout's cost, ~6% of a training step).
  const uint64_t threshold = static_cast<uint64_t>(std::llround((1.0 - p) * 65536.0));
  uint64_t g = static_cast<uint64_t>(key.first_row) * static_cast<uint64_t>(row_size);
  constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
  auto hash_of = [&](uint64_t word) { return MixBits(key.key + (word + 1) * kGolden); };
  // kept or 0 without a branch (a kept/dropped branch mispredicts p of the time).
  auto scale = [&](uint64_t bits16) { return static_cast<float>(bits16 < threshold) * kept; };
  int64_t i = 0;
  // The first hash's lanes from g % 4 on; then whole hashes; then the rest.
  if ((g & 3) != 0) {
    uint64_t h = hash_of(g >> 2) >> (16 * (g & 3));
    for (; (g & 3) != 0 && i < n; ++i, ++g, h >>= 16) {
      mask[i] = scale(h & 0xFFFF);
    }
  }
  for (; i + 4 <= n; i += 4, g += 4) {
    const uint64_t h = hash_of(g >> 2);
    mask[i] = scale(h & 0xFFFF);
    mask[i + 1] = scale((h >> 16) & 0xFFFF);
    mask[i + 2] = scale((h >> 32) & 0xFFFF);
    mask[i + 3] = scale(h >> 48);
  }
  if (i < n) {
    uint64_t h = hash_of(g >> 2);
    for (; i < n; ++i, h >>= 16) mask[i] = scale(h & 0xFFFF);
  }
}

torch::Tensor KeyedDropout(const torch::Tensor& x, double p, const DropoutKey& key) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout probability ", p, " not in [0, 1)");
  if (p == 0.0 || x.numel() == 0) return x;
  TORCH_CHECK(x.dim() >= 1, "keyed dropout needs rows along dim 0");
  const int64_t n = x.numel();
  torch::Tensor mask = torch::empty(x.sizes(), torch::TensorOptions().dtype(torch::kFloat));
  FillKeyedDropoutMask(p, key, n / x.size(0), n, mask.data_ptr<float>());
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat) {
    mask = mask.to(x.device(), x.scalar_type());
  }
  return x * mask;
}

}  // namespace recsys
