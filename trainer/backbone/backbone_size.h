// The stand-in architecture a Trainer-service job names by size: the one
// parser of "LAYERSxHIDDEN" (BERT) and "LAYERSxHIDDEN[@IMAGE/PATCH]" (ViT),
// LibTorch-free so that the service refuses a bad size at submit time with
// the same code the job worker builds the encoder from (job_backbone.h).
//
// Thread-safety: pure functions.
#ifndef RECSYS_TRAINER_BACKBONE_BACKBONE_SIZE_H_
#define RECSYS_TRAINER_BACKBONE_BACKBONE_SIZE_H_

#include <string>

#include "absl/status/statusor.h"
#include "model/encoders/backbone_config.h"

namespace recsys {

// `size`: "LAYERSxHIDDEN" (HIDDEN a multiple of 4: 4 heads), empty: "6x256";
// the feed-forward width is 4 x HIDDEN. INVALID_ARGUMENT naming `field` for
// anything else.
absl::StatusOr<BertConfig> JobBertConfig(const std::string& field, const std::string& size);

// `size`: "LAYERSxHIDDEN" or "LAYERSxHIDDEN@IMAGE/PATCH" (HIDDEN a multiple
// of 64: HIDDEN / 64 heads of width 64; IMAGE a multiple of PATCH), empty:
// "4x192@224/16", the build_cache command's stand-in. The feed-forward width
// is 4 x HIDDEN, normalisation mean = std = 0.5. INVALID_ARGUMENT naming
// `field` for anything else.
absl::StatusOr<ViTConfig> JobViTConfig(const std::string& field, const std::string& size);

}  // namespace recsys

#endif  // RECSYS_TRAINER_BACKBONE_BACKBONE_SIZE_H_
