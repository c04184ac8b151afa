// Interfaces of the frozen backbones, free of LibTorch so that the cache
// builder, the embedding-refresh job and a similarity endpoint can include
// them cheaply. Implementations: bert_text_encoder.h, vit_image_encoder.h,
// torchscript_encoder.h.
//
// An encoder returns, for each input, the CLS vector of every hidden state:
// the embedding output first, then each layer, i.e. num_states = layers + 1
// rows of hidden_size floats.
//
// Thread-safety: info() is immutable; Encode() may be called from several
// threads (the forward pass runs under InferenceMode and mutates nothing),
// though one caller already uses every LibTorch intra-op thread.
#ifndef RECSYS_MODEL_ENCODERS_ENCODER_H_
#define RECSYS_MODEL_ENCODERS_ENCODER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/encoders/image_io.h"

namespace recsys {

struct BackboneInfo {
  std::string name;         // e.g. "bert-standin-6x256", "bert-12x768"
  std::string config_json;  // architecture (and preprocessing) settings
  std::string fingerprint;  // hex digest of weights + config (+ tokenizer)
  bool standin = false;     // true: seeded weights, not a trained model
  int64_t num_states = 0;   // layers + 1
  int64_t hidden_size = 0;
};

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  virtual const BackboneInfo& info() const = 0;
  // Returns texts.size() x num_states x hidden_size floats (row-major).
  // Texts are raw catalog titles (HTML entities allowed); an empty text
  // encodes as "[CLS] [SEP]".
  virtual absl::StatusOr<std::vector<float>> Encode(
      const std::vector<std::string>& texts) = 0;
  // Mean pooling: texts.size() x hidden_size floats, each the mean of the
  // last hidden state over the text's tokens ([CLS] and [SEP] included,
  // padding excluded by the attention mask), not normalised.
  // UNIMPLEMENTED for backbones that expose per-state CLS vectors only.
  virtual absl::StatusOr<std::vector<float>> EncodeMeanPooled(
      const std::vector<std::string>& texts);
};

inline absl::StatusOr<std::vector<float>> TextEncoder::EncodeMeanPooled(
    const std::vector<std::string>&) {
  return absl::UnimplementedError(
      "this text encoder exposes per-state CLS vectors only (no mean pooling)");
}

class ImageEncoder {
 public:
  virtual ~ImageEncoder() = default;
  virtual const BackboneInfo& info() const = 0;
  // Returns images.size() x num_states x hidden_size floats. Images of any
  // size are resized and normalised as the backbone's config says.
  virtual absl::StatusOr<std::vector<float>> Encode(
      const std::vector<RgbImage>& images) = 0;
};

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_ENCODER_H_
