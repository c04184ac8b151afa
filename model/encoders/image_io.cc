#include "model/encoders/image_io.h"

#include <csetjmp>
#include <cstdio>
#include <cmath>
#include <algorithm>
#include <cstring>

#include <png.h>
// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace recsys {
namespace {

constexpr int64_t kMaxPixels = 64ll * 1024 * 1024;

absl::StatusOr<RgbImage> DecodePng(absl::string_view bytes) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("corrupt PNG: ", image.message));
  }
  if (static_cast<int64_t>(image.width) * image.height > kMaxPixels) {
    png_image_free(&image);
    return absl::InvalidArgumentError("PNG larger than 64 Mpixel");
  }
  image.format = PNG_FORMAT_RGB;  // grey/palette/alpha/16-bit converted
  RgbImage out;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, /*background=*/nullptr, out.pixels.data(),
                             /*row_stride=*/0, /*colormap=*/nullptr)) {
    png_image_free(&image);
    return absl::InvalidArgumentError(
        absl::StrCat("corrupt PNG: ", image.message));
  }
  return out;
}

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void JpegErrorExit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

absl::StatusOr<RgbImage> DecodeJpeg(absl::string_view bytes) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = JpegErrorExit;
  err.mgr.output_message = [](j_common_ptr) {};  // warnings: silent
  RgbImage out;  // declared before setjmp: nothing non-trivial after it
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return absl::InvalidArgumentError(absl::StrCat("corrupt JPEG: ", err.message));
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               bytes.size());
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  if (static_cast<int64_t>(cinfo.output_width) * cinfo.output_height >
          kMaxPixels ||
      cinfo.output_components != 3) {
    jpeg_destroy_decompress(&cinfo);
    return absl::InvalidArgumentError("unsupported JPEG (size or channels)");
  }
  out.width = static_cast<int>(cinfo.output_width);
  out.height = static_cast<int>(cinfo.output_height);
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.pixels.data() +
                   static_cast<size_t>(cinfo.output_scanline) * out.width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return out;
}

}  // namespace

absl::StatusOr<RgbImage> DecodeImage(absl::string_view bytes) {
  if (bytes.size() >= 8 && png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) == 0) {
    return DecodePng(bytes);
  }
  if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
      static_cast<unsigned char>(bytes[1]) == 0xD8 &&
      static_cast<unsigned char>(bytes[2]) == 0xFF) {
    return DecodeJpeg(bytes);
  }
  return absl::InvalidArgumentError("not a PNG or JPEG image");
}

absl::StatusOr<RgbImage> ReadImageFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  absl::StatusOr<RgbImage> image = DecodeImage(bytes);
  if (!image.ok()) {
    return absl::Status(image.status().code(),
                        absl::StrCat(path, ": ", image.status().message()));
  }
  return image;
}

absl::StatusOr<std::string> EncodePng(const RgbImage& image) {
  if (image.width < 1 || image.height < 1 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height * 3) {
    return absl::InvalidArgumentError("image size does not match its pixels");
  }
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = image.width;
  png.height = image.height;
  png.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, image.pixels.data(), 0,
                                 nullptr)) {
    return absl::InternalError(absl::StrCat("PNG encode: ", png.message));
  }
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.pixels.data(),
                                 0, nullptr)) {
    return absl::InternalError(absl::StrCat("PNG encode: ", png.message));
  }
  out.resize(size);
  return out;
}

std::vector<float> ResizeBilinear(const RgbImage& image, int out_width,
                                  int out_height) {
  std::vector<float> out(static_cast<size_t>(out_width) * out_height * 3);
  const double sx = static_cast<double>(image.width) / out_width;
  const double sy = static_cast<double>(image.height) / out_height;
  auto src = [&](int x, int y, int c) -> float {
    return image.pixels[(static_cast<size_t>(y) * image.width + x) * 3 + c];
  };
  for (int oy = 0; oy < out_height; ++oy) {
    const double fy = std::max(0.0, (oy + 0.5) * sy - 0.5);
    const int y0 = std::min(static_cast<int>(fy), image.height - 1);
    const int y1 = std::min(y0 + 1, image.height - 1);
    const double wy = fy - y0;
    for (int ox = 0; ox < out_width; ++ox) {
      const double fx = std::max(0.0, (ox + 0.5) * sx - 0.5);
      const int x0 = std::min(static_cast<int>(fx), image.width - 1);
      const int x1 = std::min(x0 + 1, image.width - 1);
      const double wx = fx - x0;
      for (int c = 0; c < 3; ++c) {
        const double top = src(x0, y0, c) * (1 - wx) + src(x1, y0, c) * wx;
        const double bottom = src(x0, y1, c) * (1 - wx) + src(x1, y1, c) * wx;
        out[(static_cast<size_t>(oy) * out_width + ox) * 3 + c] =
            static_cast<float>(top * (1 - wy) + bottom * wy);
      }
    }
  }
  return out;
}

std::vector<float> NormalizeToChw(const std::vector<float>& hwc, int width,
                                  int height, const std::vector<float>& mean,
                                  const std::vector<float>& std) {
  const size_t plane = static_cast<size_t>(width) * height;
  std::vector<float> out(plane * 3);
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) {
      out[c * plane + i] = (hwc[i * 3 + c] / 255.0f - mean[c]) / std[c];
    }
  }
  return out;
}

}  // namespace recsys
