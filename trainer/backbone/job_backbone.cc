#include "trainer/backbone/job_backbone.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/user_input.h"

namespace recsys {

absl::StatusOr<BertTextEncoderOptions> JobBertOptions(const std::string& field,
                                                      const std::string& vocab,
                                                      const std::string& weights,
                                                      const std::string& size,
                                                      const std::string& device) {
  std::vector<std::string> parts = absl::StrSplit(size.empty() ? "6x256" : size, 'x');
  int layers = 0, hidden = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &layers) ||
      !absl::SimpleAtoi(parts[1], &hidden) || layers <= 0 || hidden <= 0 || hidden % 4 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": expected LAYERSxHIDDEN (HIDDEN a multiple of 4), e.g. 6x256, got ",
        QuoteUserInput(size)));
  }
  BertTextEncoderOptions o;
  o.vocab_path = vocab;
  o.weights_path = weights;
  o.config.num_hidden_layers = layers;
  o.config.hidden_size = hidden;
  o.config.num_attention_heads = 4;
  o.config.intermediate_size = 4 * hidden;
  o.device = device;
  return o;
}

}  // namespace recsys
