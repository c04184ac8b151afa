// The BERT-architecture text backbone a Trainer-service job names by
// (vocab, weights, "LAYERSxHIDDEN"): the one place that turns those into
// encoder options, so that an embedding refresh re-creates exactly the
// encoder a build_cache job built its cache with (and the fingerprints
// agree).
//
// Thread-safety: pure functions.
#ifndef RECSYS_TRAINER_BACKBONE_JOB_BACKBONE_H_
#define RECSYS_TRAINER_BACKBONE_JOB_BACKBONE_H_

#include <string>

#include "absl/status/statusor.h"
#include "model/encoders/bert_text_encoder.h"

namespace recsys {

// `size`: "LAYERSxHIDDEN" (HIDDEN a multiple of 4: 4 heads), empty: "6x256";
// the feed-forward width is 4 x HIDDEN. INVALID_ARGUMENT naming `field` for
// anything else.
absl::StatusOr<BertTextEncoderOptions> JobBertOptions(const std::string& field,
                                                      const std::string& vocab,
                                                      const std::string& weights,
                                                      const std::string& size,
                                                      const std::string& device);

}  // namespace recsys

#endif  // RECSYS_TRAINER_BACKBONE_JOB_BACKBONE_H_
