#include "trainer/backbone/job_backbone.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "model/encoders/backbone_config.h"
#include "trainer/backbone/backbone_size.h"

namespace recsys {

absl::StatusOr<BertTextEncoderOptions> JobBertOptions(const std::string& field,
                                                      const std::string& vocab,
                                                      const std::string& weights,
                                                      const std::string& size,
                                                      const std::string& device) {
  BertTextEncoderOptions o;
  ASSIGN_OR_RETURN(o.config, JobBertConfig(field, size));
  o.vocab_path = vocab;
  o.weights_path = weights;
  o.device = device;
  return o;
}

absl::StatusOr<ViTImageEncoderOptions> JobViTOptions(const std::string& field,
                                                     const std::string& weights,
                                                     const std::string& size,
                                                     const std::string& device) {
  ViTImageEncoderOptions o;
  ASSIGN_OR_RETURN(o.config, JobViTConfig(field, size));
  o.weights_path = weights;
  o.device = device;
  return o;
}

absl::StatusOr<ViTImageEncoderOptions> CacheViTOptions(const std::string& field,
                                                       const HiddenStateCacheInfo& cache,
                                                       const std::string& weights,
                                                       const std::string& device) {
  if (absl::StartsWith(cache.backbone, "synthetic-")) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, ": its backbone ", QuoteUserInput(cache.backbone),
        " is synthetic (random demo states, not computed from any image): it cannot encode "
        "new or changed items"));
  }
  if (!absl::StartsWith(cache.backbone, "vit")) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, ": its backbone ", QuoteUserInput(cache.backbone),
        " is not a ViT this job can re-create"));
  }
  absl::StatusOr<ViTConfig> config = ParseViTConfig(cache.backbone_config);
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": its backbone_config is not a ViT config: ", config.status().message()));
  }
  ViTImageEncoderOptions o;
  o.weights_path = weights;
  o.config = *config;
  o.device = device;
  return o;
}

}  // namespace recsys
