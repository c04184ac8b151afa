// Image decoding (PNG via libpng, JPEG via libjpeg) and the preprocessing
// the image backbones share: bilinear resize and per-channel normalisation.
// No LibTorch here.
//
// Thread-safety: pure functions.
#ifndef RECSYS_MODEL_ENCODERS_IMAGE_IO_H_
#define RECSYS_MODEL_ENCODERS_IMAGE_IO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys {

// 8-bit RGB, row-major, interleaved: pixels[(y * width + x) * 3 + c].
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;
};

// Decodes PNG or JPEG (detected from the magic bytes). Grey, palette and
// alpha images become RGB (alpha dropped); 16-bit PNG is reduced to 8 bits.
// INVALID_ARGUMENT for other formats or corrupt data.
absl::StatusOr<RgbImage> DecodeImage(absl::string_view bytes);
// Reads and decodes a file; NOT_FOUND when it does not exist.
absl::StatusOr<RgbImage> ReadImageFile(const std::string& path);
// Encodes PNG (tests and demo data).
absl::StatusOr<std::string> EncodePng(const RgbImage& image);

// Bilinear resize with half-pixel centres (align_corners = false, no
// antialiasing), as torch.nn.functional.interpolate(mode="bilinear").
// Returns out_height x out_width x 3 floats in [0, 255].
// REQUIRES: a non-empty image, out sizes >= 1.
std::vector<float> ResizeBilinear(const RgbImage& image, int out_width,
                                  int out_height);

// Turns resized HWC floats in [0, 255] into CHW floats
// ((x / 255) - mean[c]) / std[c]. REQUIRES: mean/std have 3 entries.
std::vector<float> NormalizeToChw(const std::vector<float>& hwc, int width,
                                  int height, const std::vector<float>& mean,
                                  const std::vector<float>& std);

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_IMAGE_IO_H_
