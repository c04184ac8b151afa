// The encoder attached to a similarity collection, behind one interface
// whatever made it: the weight-free embedders (hashed_text, pixel_pca), which
// are fitted on the collection's entries at Publish, or a fixed backbone
// from model/encoders (BERT or TorchScript text, ViT or TorchScript image),
// whose embedding is the CLS vector of the last hidden state or, for text
// with POOLING_MEAN, the last layer averaged over the text's tokens (mask-
// aware). Every output is L2-normalised, so inner product is cosine.
//
// A backbone is run once on a probe input when it is created: a width other
// than a TorchScript spec's declared `dimension`, or non-finite outputs, are
// INVALID_ARGUMENT then, not at the first query.
//
// Thread-safety: a CollectionEncoder is immutable once made; Embed* may be
// called from several threads. No LibTorch in this header.
#ifndef RECSYS_SERVER_SIMILARITY_COLLECTION_ENCODER_H_
#define RECSYS_SERVER_SIMILARITY_COLLECTION_ENCODER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/similarity.pb.h"
#include "server/similarity/gray_image.h"

namespace recsys {
namespace similarity {

class CollectionEncoder {
 public:
  virtual ~CollectionEncoder() = default;
  // What made the vectors, e.g. "hashed_text/v1 dim=512 ... state=1a2b3c4d".
  virtual const std::string& fingerprint() const = 0;
  virtual int dimension() const = 0;
  // True for weight-free encoders: Fit* before embedding a collection.
  virtual bool needs_fit() const = 0;
  // The fitted state ("" for fixed encoders).
  virtual std::string Serialize() const = 0;

  // Text encoders. INVALID_ARGUMENT for a text the encoder refuses.
  virtual absl::StatusOr<std::vector<float>> EmbedText(absl::string_view text) const;
  // Image encoders: the features kept for an image until Publish (the
  // preprocessed pixels of a weight-free encoder, the final vector of a
  // fixed one), and the final vector of features.
  virtual absl::StatusOr<std::vector<float>> ImageFeatures(const GrayImage& image) const;
  // The features of n images, concatenated (one forward pass per batch for
  // a backbone).
  virtual absl::StatusOr<std::vector<float>> ImageFeaturesBatch(
      const std::vector<GrayImage>& images) const;
  // n feature rows -> n vectors; `rows` as ImageFeatures returned them.
  virtual absl::StatusOr<std::vector<float>> EmbedFeatureRows(
      const std::vector<float>& rows, int64_t n) const;

  // Weight-free encoders: a fitted copy. FAILED_PRECONDITION for fixed ones.
  virtual absl::StatusOr<std::unique_ptr<CollectionEncoder>> FitTexts(
      const std::vector<std::string>& texts) const;
  virtual absl::StatusOr<std::unique_ptr<CollectionEncoder>> FitFeatureRows(
      const std::vector<float>& rows) const;
};

// The encoder a spec names, unfitted for weight-free ones. INVALID_ARGUMENT
// for bad options or an encoder of the wrong kind; NOT_FOUND for missing
// model files.
absl::StatusOr<std::unique_ptr<CollectionEncoder>> CreateCollectionEncoder(
    v1::SimilarityKind kind, const v1::EncoderSpec& spec);

// The fitted encoder of a Publish: `state` as Serialize() wrote it (weight-
// free), or the spec again (fixed). INVALID_ARGUMENT for a damaged state.
absl::StatusOr<std::unique_ptr<CollectionEncoder>> RestoreCollectionEncoder(
    v1::SimilarityKind kind, const v1::EncoderSpec& spec, absl::string_view state);

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_COLLECTION_ENCODER_H_
