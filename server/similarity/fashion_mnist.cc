#include "server/similarity/fashion_mnist.h"

#include <zlib.h>

#include <array>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace recsys {
namespace similarity {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;

// The whole (decompressed) file; zlib reads plain files unchanged.
absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path,
                                             uint64_t max_bytes) {
  if (!PathExists(path)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  }
  std::string out;
  std::array<char, 1 << 16> buf;
  while (true) {
    const int n = gzread(f, buf.data(), buf.size());
    if (n < 0) {
      int err = 0;
      const std::string msg = gzerror(f, &err);
      gzclose(f);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": corrupt gzip data: ", msg));
    }
    if (n == 0) break;
    out.append(buf.data(), n);
    if (out.size() > max_bytes) {
      gzclose(f);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": more than ", max_bytes, " bytes"));
    }
  }
  gzclose(f);
  return out;
}

uint32_t BigEndian32(const std::string& s, size_t at) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data() + at);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | p[3];
}

absl::Status CheckHeader(const std::string& path, const std::string& data,
                         uint32_t magic, size_t header_bytes) {
  if (data.size() < header_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", data.size(), " bytes, shorter than the IDX header"));
  }
  if (BigEndian32(data, 0) != magic) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": IDX magic 0x", absl::Hex(BigEndian32(data, 0)),
                     ", expected 0x", absl::Hex(magic)));
  }
  return absl::OkStatus();
}

}  // namespace

GrayImage LabelledImages::Image(int64_t i) const {
  GrayImage image;
  image.width = cols;
  image.height = rows;
  const size_t n = static_cast<size_t>(rows) * cols;
  image.pixels.resize(n);
  const uint8_t* src = &pixels[i * n];
  for (size_t j = 0; j < n; ++j) image.pixels[j] = src[j] / 255.0f;
  return image;
}

absl::StatusOr<LabelledImages> ReadIdxImagesAndLabels(
    const std::string& images_path, const std::string& labels_path,
    const IdxReadOptions& options) {
  const uint64_t max_image_bytes =
      16 + static_cast<uint64_t>(options.max_images) * options.max_side *
               options.max_side;
  ASSIGN_OR_RETURN(std::string images,
                   ReadMaybeGzipped(images_path, max_image_bytes));
  RETURN_IF_ERROR(CheckHeader(images_path, images, kImagesMagic, 16));
  const uint32_t count = BigEndian32(images, 4);
  const uint32_t rows = BigEndian32(images, 8);
  const uint32_t cols = BigEndian32(images, 12);
  if (count > static_cast<uint64_t>(options.max_images)) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": ", count, " images, more than the limit ",
                     options.max_images));
  }
  if (rows == 0 || cols == 0 || rows > static_cast<uint32_t>(options.max_side) ||
      cols > static_cast<uint32_t>(options.max_side)) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": image size ", rows, "x", cols,
                     ", expected 1..", options.max_side, " per side"));
  }
  const uint64_t want = 16 + uint64_t{count} * rows * cols;
  if (images.size() != want) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": ", images.size(), " bytes, the header (",
                     count, " x ", rows, "x", cols, ") needs ", want));
  }
  ASSIGN_OR_RETURN(std::string labels,
                   ReadMaybeGzipped(labels_path, 8 + uint64_t{count} + 1));
  RETURN_IF_ERROR(CheckHeader(labels_path, labels, kLabelsMagic, 8));
  const uint32_t label_count = BigEndian32(labels, 4);
  if (label_count != count) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_path, ": ", label_count, " labels for ", count,
                     " images in ", images_path));
  }
  if (labels.size() != 8 + uint64_t{count}) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_path, ": ", labels.size(), " bytes, expected ",
                     8 + uint64_t{count}));
  }
  LabelledImages out;
  out.rows = static_cast<int>(rows);
  out.cols = static_cast<int>(cols);
  out.pixels.assign(images.begin() + 16, images.end());
  out.labels.assign(labels.begin() + 8, labels.end());
  return out;
}

absl::StatusOr<FashionMnist> ReadFashionMnist(const std::string& dir,
                                              const IdxReadOptions& options) {
  auto find = [&](const std::string& base) {
    const std::string gz = JoinPath(dir, base + ".gz");
    return PathExists(gz) ? gz : JoinPath(dir, base);
  };
  const std::string train_images = find("train-images-idx3-ubyte");
  if (!PathExists(train_images)) {
    return absl::NotFoundError(absl::StrCat(
        "no Fashion-MNIST in ", dir,
        " (Debian package dataset-fashion-mnist installs it)"));
  }
  FashionMnist data;
  ASSIGN_OR_RETURN(data.train,
                   ReadIdxImagesAndLabels(train_images,
                                          find("train-labels-idx1-ubyte"),
                                          options));
  ASSIGN_OR_RETURN(data.test,
                   ReadIdxImagesAndLabels(find("t10k-images-idx3-ubyte"),
                                          find("t10k-labels-idx1-ubyte"),
                                          options));
  return data;
}

absl::string_view FashionMnistClassName(int label) {
  static constexpr const char* kNames[] = {
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  if (label < 0 || label >= 10) return "?";
  return kNames[label];
}

}  // namespace similarity
}  // namespace recsys
