// Reader for labelled image sets in the IDX format of MNIST / Fashion-MNIST
// (gzipped or plain), e.g. Debian's dataset-fashion-mnist package, which
// installs the four files under kDebianFashionMnistDir.
//
// IDX: big-endian magic 0x00000803 (images: count, rows, cols, then
// count*rows*cols unsigned bytes) or 0x00000801 (labels: count, then count
// bytes). Every header field is checked against the bytes actually present;
// a short or over-long file is INVALID_ARGUMENT naming the file.
//
// Thread-safety: pure functions; the returned data is a value.
#ifndef RECSYS_SERVER_SIMILARITY_FASHION_MNIST_H_
#define RECSYS_SERVER_SIMILARITY_FASHION_MNIST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/similarity/gray_image.h"

namespace recsys {
namespace similarity {

inline constexpr char kDebianFashionMnistDir[] =
    "/usr/share/datasets/fashion-mnist";

struct LabelledImages {
  int rows = 0;
  int cols = 0;
  // Image i is pixels[i * rows * cols, (i + 1) * rows * cols), row-major,
  // 0 = background. Fashion-MNIST draws the garment bright on black.
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> labels;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  // Image i as display values in [0, 1]. REQUIRES: 0 <= i < size().
  GrayImage Image(int64_t i) const;
};

struct FashionMnist {
  LabelledImages train;  // 60,000 in the real set
  LabelledImages test;   // 10,000
};

struct IdxReadOptions {
  // Refuse files that claim more images (a damaged header would otherwise
  // ask for gigabytes).
  int64_t max_images = 1'000'000;
  // Refuse images larger than this on either side.
  int max_side = 4096;
};

// Reads an image file and its label file; the counts must agree.
absl::StatusOr<LabelledImages> ReadIdxImagesAndLabels(
    const std::string& images_path, const std::string& labels_path,
    const IdxReadOptions& options = {});

// Reads {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from `dir`.
// NOT_FOUND (naming the package) when the files are not there.
absl::StatusOr<FashionMnist> ReadFashionMnist(
    const std::string& dir = kDebianFashionMnistDir,
    const IdxReadOptions& options = {});

// "T-shirt/top", "Trouser", ... for labels 0..9; "?" otherwise.
absl::string_view FashionMnistClassName(int label);

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_FASHION_MNIST_H_
