#include "model/encoders/image_io.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include <jpeglib.h>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/encoders/test_util.h"

namespace recsys {
namespace {

RgbImage Gradient(int w, int h) {
  RgbImage im;
  im.width = w;
  im.height = h;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      im.pixels.push_back(static_cast<uint8_t>(x * 10));
      im.pixels.push_back(static_cast<uint8_t>(y * 20));
      im.pixels.push_back(77);
    }
  }
  return im;
}

TEST(ImageIoTest, PngRoundTrip) {
  const RgbImage im = Gradient(5, 3);
  ASSERT_OK_AND_ASSIGN(std::string png, EncodePng(im));
  ASSERT_OK_AND_ASSIGN(RgbImage back, DecodeImage(png));
  EXPECT_EQ(back.width, 5);
  EXPECT_EQ(back.height, 3);
  EXPECT_EQ(back.pixels, im.pixels);
}

// Encodes a JPEG with libjpeg's compressor (independent of the decoder).
std::string EncodeJpeg(const RgbImage& im, int quality) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buf, &size);
  cinfo.image_width = im.width;
  cinfo.image_height = im.height;
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(im.pixels.data() +
                                        cinfo.next_scanline * im.width * 3);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string out(reinterpret_cast<char*>(buf), size);
  jpeg_destroy_compress(&cinfo);
  free(buf);
  return out;
}

TEST(ImageIoTest, DecodesJpeg) {
  RgbImage im;
  im.width = 16;
  im.height = 8;
  for (int i = 0; i < 16 * 8; ++i) {
    im.pixels.insert(im.pixels.end(), {200, 30, 60});
  }
  const std::string path = testing_util::TempPath("red.jpg");
  ASSERT_OK(WriteFileAtomically(path, EncodeJpeg(im, 95)));
  ASSERT_OK_AND_ASSIGN(RgbImage back, ReadImageFile(path));
  EXPECT_EQ(back.width, 16);
  EXPECT_EQ(back.height, 8);
  for (size_t i = 0; i < back.pixels.size(); i += 3) {
    ASSERT_NEAR(back.pixels[i], 200, 4);
    ASSERT_NEAR(back.pixels[i + 1], 30, 4);
    ASSERT_NEAR(back.pixels[i + 2], 60, 4);
  }
  // Truncated JPEG data is an error, not a crash.
  const std::string jpeg = EncodeJpeg(im, 95);
  EXPECT_THAT(DecodeImage(jpeg.substr(0, 40)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ImageIoTest, RejectsGarbage) {
  EXPECT_THAT(DecodeImage("GIF89a..."), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(std::string png, EncodePng(Gradient(4, 4)));
  EXPECT_THAT(DecodeImage(png.substr(0, png.size() / 2)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodeImage(std::string("\xFF\xD8\xFF\xE0garbage", 11)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ReadImageFile("/nonexistent.png"), StatusIs(absl::StatusCode::kNotFound));
}

TEST(ImageIoTest, BilinearResizeMatchesHalfPixelConvention) {
  RgbImage im;
  im.width = 2;
  im.height = 1;
  im.pixels = {0, 0, 0, 100, 100, 100};
  // 2 -> 4 wide: centres at -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1).
  const std::vector<float> out = ResizeBilinear(im, 4, 1);
  EXPECT_FLOAT_EQ(out[0], 0);
  EXPECT_FLOAT_EQ(out[3], 25);
  EXPECT_FLOAT_EQ(out[6], 75);
  EXPECT_FLOAT_EQ(out[9], 100);
  const std::vector<float> same = ResizeBilinear(Gradient(6, 4), 6, 4);
  EXPECT_FLOAT_EQ(same[(2 * 6 + 3) * 3 + 0], 30);
  EXPECT_FLOAT_EQ(same[(2 * 6 + 3) * 3 + 1], 40);
  const std::vector<float> chw =
      NormalizeToChw({255, 0, 127.5f}, 1, 1, {0.5f, 0.5f, 0.5f}, {0.5f, 0.25f, 0.5f});
  EXPECT_FLOAT_EQ(chw[0], 1.0f);
  EXPECT_FLOAT_EQ(chw[1], -2.0f);
  EXPECT_NEAR(chw[2], 0.0f, 1e-6);
}

}  // namespace
}  // namespace recsys
