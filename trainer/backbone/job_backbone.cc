#include "trainer/backbone/job_backbone.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
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
  ViTImageEncoderOptions o;
  ASSIGN_OR_RETURN(o.config, CacheViTConfig(field, cache));
  o.weights_path = weights;
  o.device = device;
  return o;
}

}  // namespace recsys
