#include "server/similarity/gray_image.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace recsys {
namespace similarity {
namespace {

// For each output index, the (source index, weight) taps along one axis.
using Taps = std::vector<std::vector<std::pair<int, double>>>;

Taps AxisTaps(int in, int out) {
  Taps taps(out);
  const double scale = static_cast<double>(in) / out;
  if (out >= in) {
    for (int o = 0; o < out; ++o) {
      const double f = std::max(0.0, (o + 0.5) * scale - 0.5);
      const int i0 = std::min(static_cast<int>(f), in - 1);
      const int i1 = std::min(i0 + 1, in - 1);
      const double w = f - i0;
      taps[o] = {{i0, 1 - w}, {i1, w}};
    }
    return taps;
  }
  for (int o = 0; o < out; ++o) {
    const double begin = o * scale;
    const double end = (o + 1) * scale;
    for (int i = static_cast<int>(begin); i < in && i < end; ++i) {
      const double overlap = std::min<double>(end, i + 1) -
                             std::max<double>(begin, i);
      if (overlap > 0) taps[o].push_back({i, overlap / scale});
    }
  }
  return taps;
}

}  // namespace

GrayImage GrayFromRgb(const RgbImage& image) {
  GrayImage gray;
  gray.width = image.width;
  gray.height = image.height;
  const size_t n = static_cast<size_t>(image.width) * image.height;
  gray.pixels.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &image.pixels[i * 3];
    gray.pixels[i] =
        static_cast<float>((0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]) / 255.0);
  }
  return gray;
}

std::vector<float> ResizeGray(const GrayImage& image, int out_width,
                              int out_height) {
  const Taps xt = AxisTaps(image.width, out_width);
  const Taps yt = AxisTaps(image.height, out_height);
  // Rows first (height x out_width), then columns.
  std::vector<double> rows(static_cast<size_t>(image.height) * out_width);
  for (int y = 0; y < image.height; ++y) {
    const float* src = &image.pixels[static_cast<size_t>(y) * image.width];
    for (int ox = 0; ox < out_width; ++ox) {
      double v = 0;
      for (const auto& [i, w] : xt[ox]) v += w * src[i];
      rows[static_cast<size_t>(y) * out_width + ox] = v;
    }
  }
  std::vector<float> out(static_cast<size_t>(out_width) * out_height);
  for (int oy = 0; oy < out_height; ++oy) {
    for (int ox = 0; ox < out_width; ++ox) {
      double v = 0;
      for (const auto& [i, w] : yt[oy]) {
        v += w * rows[static_cast<size_t>(i) * out_width + ox];
      }
      out[static_cast<size_t>(oy) * out_width + ox] = static_cast<float>(v);
    }
  }
  return out;
}

}  // namespace similarity
}  // namespace recsys
