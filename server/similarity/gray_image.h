// A single-channel float image, what both the image decoders (PNG, JPEG,
// DICOM) produce and the pixel-PCA embedder consumes, plus the resize the
// embedder uses. DICOM pixels carry more than 8 bits, so this is float and
// not image_io's 8-bit RgbImage.
//
// Thread-safety: a value type; the functions are pure.
#ifndef RECSYS_SERVER_SIMILARITY_GRAY_IMAGE_H_
#define RECSYS_SERVER_SIMILARITY_GRAY_IMAGE_H_

#include <vector>

#include "model/encoders/image_io.h"

namespace recsys {
namespace similarity {

// Row-major: pixels[y * width + x], display values in [0, 1] (0 black).
struct GrayImage {
  int width = 0;
  int height = 0;
  std::vector<float> pixels;
};

// ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B) / 255.
GrayImage GrayFromRgb(const RgbImage& image);

// Resizes to out_width x out_height, each axis on its own: an axis that is
// enlarged (or kept) is interpolated bilinearly with half-pixel centres,
// exactly as image_io's ResizeBilinear (torch interpolate, align_corners =
// false); an axis that shrinks is area-averaged (each output pixel the mean
// of the source pixels it covers, fractionally weighted), so a 512x512 scan
// reduced to 28x28 does not alias. Returns out_height * out_width floats.
// REQUIRES: a non-empty image with pixels.size() == width * height, out
// sizes >= 1.
std::vector<float> ResizeGray(const GrayImage& image, int out_width,
                              int out_height);

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_GRAY_IMAGE_H_
