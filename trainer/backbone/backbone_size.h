// The backbone architecture a Trainer-service job names: by size, the one
// parser of "LAYERSxHIDDEN" (BERT) and "LAYERSxHIDDEN[@IMAGE/PATCH]" (ViT),
// or by the image cache a ViT wrote. LibTorch-free so that the service
// refuses a bad one at submit time with the same code the job worker builds
// the encoder from (job_backbone.h).
//
// Thread-safety: pure functions.
#ifndef RECSYS_TRAINER_BACKBONE_BACKBONE_SIZE_H_
#define RECSYS_TRAINER_BACKBONE_BACKBONE_SIZE_H_

#include <string>

#include "absl/status/statusor.h"
#include "model/encoders/backbone_config.h"
#include "model/hidden_state_cache.h"

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

// The architecture of the ViT that wrote image cache `cache` (its recorded
// backbone_config), for re-creating it. Errors name `field` (the cache's spec
// field): FAILED_PRECONDITION for a synthetic cache or a backbone that is not
// a ViT; INVALID_ARGUMENT for a backbone_config that does not parse.
absl::StatusOr<ViTConfig> CacheViTConfig(const std::string& field,
                                         const HiddenStateCacheInfo& cache);

}  // namespace recsys

#endif  // RECSYS_TRAINER_BACKBONE_BACKBONE_SIZE_H_
