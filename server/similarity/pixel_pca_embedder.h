// The weight-free default image embedder: an image becomes its grayscale
// pixels at a fixed resolution, centred on the indexed set's mean pixel,
// projected on the indexed set's leading principal components, partially
// whitened, and L2-normalised, so inner product is cosine similarity.
//
// Good for: near-duplicate and same-kind retrieval on aligned, same-modality
// images (Fashion-MNIST P@1 0.87, see README.md), with no model weights and a
// fit of seconds. Not for: invariance to shifts, rotations, scale or contrast
// changes, or semantics across modalities; that is what a foundation-model
// encoder is for.
//
// Whitening: component j is scaled by (lambda_j + eps)^(-whitening / 2),
// eps = whitening_epsilon * lambda_0: 0 keeps the PCA variances (plain
// projection), 1 is full whitening (every component unit variance), values
// between trade noise amplification in the weak components against the
// dominance of the strong ones.
//
// Fitted state: the mean, the (scaled) components and the eigenvalues, in a
// safetensors blob that also carries the options and a CRC-32C of its
// contents (checked on Deserialize). The fingerprint names the embedder, its
// settings and that checksum: two embedders with the same fingerprint give
// the same vectors, and a collection refuses queries from any other.
//
// Thread-safety: immutable after Fit / Deserialize; Embed may be called from
// any number of threads. LibTorch is used inside the .cc only (fitting and
// batch projection).
#ifndef RECSYS_SERVER_SIMILARITY_PIXEL_PCA_EMBEDDER_H_
#define RECSYS_SERVER_SIMILARITY_PIXEL_PCA_EMBEDDER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/similarity/gray_image.h"

namespace recsys {
namespace similarity {

struct PixelPcaOptions {
  // The defaults are the best of a sweep on Fashion-MNIST (README.md).
  // Images are resized (ResizeGray) to resolution x resolution; 4..128.
  // Area-averaging 28 -> 16 also smooths away pixel noise.
  int resolution = 16;
  // Principal components kept, the output dimension; 1..resolution^2 and at
  // most the number of fitting images - 1.
  int components = 128;
  // Exponent of the whitening, 0 (none) .. 1 (full).
  double whitening = 0.75;
  // Regulariser of the whitening, relative to the largest eigenvalue.
  double whitening_epsilon = 1e-3;
  // Subtract the fitted mean pixel before projecting.
  bool center = true;
};

class PixelPcaEmbedder {
 public:
  // Fits on `rows`: n preprocessed images (Preprocess), n * input_dim()
  // floats. INVALID_ARGUMENT for bad options, a size that is not a multiple
  // of resolution^2, a NaN or infinite value, or fewer than components + 1
  // images; INTERNAL if the
  // eigen-decomposition fails.
  static absl::StatusOr<std::unique_ptr<PixelPcaEmbedder>> Fit(
      const PixelPcaOptions& options, const std::vector<float>& rows);
  // Convenience: preprocesses `images` and fits.
  static absl::StatusOr<std::unique_ptr<PixelPcaEmbedder>> FitImages(
      const PixelPcaOptions& options, const std::vector<GrayImage>& images);
  // The inverse of Serialize(). INVALID_ARGUMENT for a damaged blob
  // (checksum, shapes, options).
  static absl::StatusOr<std::unique_ptr<PixelPcaEmbedder>> Deserialize(
      absl::string_view bytes);

  // Resizes to resolution x resolution: input_dim() floats. REQUIRES: a
  // non-empty image whose pixel count matches its size.
  static std::vector<float> Preprocess(const GrayImage& image, int resolution);

  // Embeds one image into dimension() floats (L2 norm 1, or all zeros for
  // an image equal to the mean). INVALID_ARGUMENT for an empty image, one
  // whose pixel count does not match its size, or NaN / infinite pixels.
  absl::StatusOr<std::vector<float>> Embed(const GrayImage& image) const;
  // Embeds n preprocessed rows (n * input_dim() floats) into n *
  // dimension() floats.
  absl::StatusOr<std::vector<float>> EmbedRows(
      const std::vector<float>& rows) const;

  // A safetensors blob; see the header comment.
  std::string Serialize() const;

  const PixelPcaOptions& options() const { return options_; }
  int input_dim() const { return options_.resolution * options_.resolution; }
  int dimension() const { return options_.components; }
  // Eigenvalues of the kept components, largest first.
  const std::vector<float>& eigenvalues() const { return eigenvalues_; }
  int64_t fitted_images() const { return fitted_images_; }
  // "pixel_pca/v1 res=28 k=64 white=0.5 eps=0.001 center=1 state=<crc32c>".
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  PixelPcaEmbedder() = default;
  void Finish();  // computes the checksum and the fingerprint

  PixelPcaOptions options_;
  int64_t fitted_images_ = 0;
  std::vector<float> mean_;         // [input_dim]
  std::vector<float> projection_;   // [components, input_dim], whitened
  std::vector<float> eigenvalues_;  // [components]
  uint32_t state_crc_ = 0;
  std::string fingerprint_;
};

// INVALID_ARGUMENT naming the first bad field.
absl::Status ValidatePixelPcaOptions(const PixelPcaOptions& options);

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_PIXEL_PCA_EMBEDDER_H_
