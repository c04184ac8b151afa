// The frozen backbones a Trainer-service job names: a BERT-architecture text
// backbone by (vocab, weights, "LAYERSxHIDDEN") and a ViT image backbone by
// (weights, "LAYERSxHIDDEN[@IMAGE/PATCH]") or by the image cache it wrote.
// The one place that turns those into encoder options, so that an embedding
// refresh re-creates exactly the encoder a build_cache job built its cache
// with (and the fingerprints agree). Sizes are parsed by backbone_size.h,
// which the service also runs at submit time.
//
// Thread-safety: pure functions.
#ifndef RECSYS_TRAINER_BACKBONE_JOB_BACKBONE_H_
#define RECSYS_TRAINER_BACKBONE_JOB_BACKBONE_H_

#include <string>

#include "absl/status/statusor.h"
#include "model/encoders/bert_text_encoder.h"
#include "model/encoders/vit_image_encoder.h"
#include "model/hidden_state_cache.h"

namespace recsys {

// `size` as JobBertConfig (backbone_size.h). INVALID_ARGUMENT naming `field`.
absl::StatusOr<BertTextEncoderOptions> JobBertOptions(const std::string& field,
                                                      const std::string& vocab,
                                                      const std::string& weights,
                                                      const std::string& size,
                                                      const std::string& device);

// `size` as JobViTConfig (backbone_size.h): the architecture of the seeded
// stand-in, or of `weights` when no config.json lies beside them.
// INVALID_ARGUMENT naming `field`.
absl::StatusOr<ViTImageEncoderOptions> JobViTOptions(const std::string& field,
                                                     const std::string& weights,
                                                     const std::string& size,
                                                     const std::string& device);

// The ViT that wrote image cache `cache` (CacheViTConfig, backbone_size.h:
// its recorded backbone_config is the architecture), with `weights` (empty:
// the seeded stand-in). Errors as CacheViTConfig.
absl::StatusOr<ViTImageEncoderOptions> CacheViTOptions(const std::string& field,
                                                       const HiddenStateCacheInfo& cache,
                                                       const std::string& weights,
                                                       const std::string& device);

}  // namespace recsys

#endif  // RECSYS_TRAINER_BACKBONE_JOB_BACKBONE_H_
