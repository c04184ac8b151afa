#include "trainer/training/step_size.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace recsys {

absl::Status CheckStepSize(const StepSize& s, const std::string& field_prefix) {
  // Each factor is at most 2^20 (the callers' ranges), so no product of two
  // overflows; three are checked against the bound divided by the third.
  const int64_t positions = s.batch_size * s.max_len;
  const int64_t width = std::max(s.ffn_dim, 3 * s.embedding_dim);
  const int64_t candidates = std::min(positions, s.num_items);
  struct Tensor {
    const char* what;
    int64_t a, b, c;  // elements a x b x c
  };
  for (const Tensor& t :
       {Tensor{"the user encoder's activations (positions x max(ffn_dim, 3 x embedding_dim))",
               positions, width, 1},
        Tensor{"the attention scores (batch_size x num_heads x max_len^2)",
               s.batch_size * s.num_heads, s.max_len, s.max_len},
        Tensor{"the in-batch logits (positions x candidates, at most the catalog's items)",
               positions, candidates, 1}}) {
    if (t.a <= kMaxStepTensorElements / t.c / t.b) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        field_prefix, "batch_size: ", s.batch_size, " windows of max_len ", s.max_len, " (",
        positions, " positions a step) make ", t.what, " ", t.a, " x ", t.b, " x ", t.c,
        " floats, more than the ", kMaxStepTensorElements,
        " (1 GiB) a step's tensor may hold; lower batch_size or max_len"));
  }
  return absl::OkStatus();
}

}  // namespace recsys
