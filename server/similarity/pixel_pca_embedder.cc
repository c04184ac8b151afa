#include "server/similarity/pixel_pca_embedder.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_macros.h"
#include "common/user_input.h"

namespace recsys {
namespace similarity {
namespace {

constexpr char kFormat[] = "pixel_pca/v1";

std::string FloatBytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()),
                     v.size() * sizeof(float));
}

std::string OptionsString(const PixelPcaOptions& o) {
  return absl::StrFormat("res=%d k=%d white=%g eps=%g center=%d", o.resolution,
                         o.components, o.whitening, o.whitening_epsilon,
                         o.center ? 1 : 0);
}

void NormalizeRow(float* v, int n) {
  double sq = 0;
  for (int i = 0; i < n; ++i) sq += static_cast<double>(v[i]) * v[i];
  if (sq <= 0) return;
  const float inv = static_cast<float>(1.0 / std::sqrt(sq));
  for (int i = 0; i < n; ++i) v[i] *= inv;
}

absl::StatusOr<std::string> Meta(const std::map<std::string, std::string>& m,
                                 const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pixel-PCA state: metadata \"", key, "\" missing"));
  }
  return it->second;
}

absl::StatusOr<std::vector<float>> ReadTensor(const SafetensorsFile& file,
                                              const std::string& name,
                                              std::vector<int64_t> shape) {
  auto view = file.Get(name);
  if (!view.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pixel-PCA state: ", view.status().message()));
  }
  if (view->dtype != DType::kF32 || view->shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pixel-PCA state: tensor \"", name, "\" has the wrong dtype or shape"));
  }
  std::vector<float> out(view->num_elements());
  RETURN_IF_ERROR(ReadAsFloat(*view, 0, out.size(), out.data()));
  return out;
}

// INVALID_ARGUMENT naming the first NaN or infinite value.
absl::Status CheckFinite(const std::vector<float>& v, absl::string_view what) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": value ", i, " is not finite"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePixelPcaOptions(const PixelPcaOptions& o) {
  if (o.resolution < 4 || o.resolution > 128) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resolution: expected 4..128, got ", o.resolution));
  }
  if (o.components < 1 || o.components > o.resolution * o.resolution) {
    return absl::InvalidArgumentError(
        absl::StrCat("components: expected 1..", o.resolution * o.resolution,
                     " (resolution^2), got ", o.components));
  }
  if (!(o.whitening >= 0 && o.whitening <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("whitening: expected 0..1, got ", o.whitening));
  }
  if (!(o.whitening_epsilon > 0 && o.whitening_epsilon <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "whitening_epsilon: expected (0, 1], got ", o.whitening_epsilon));
  }
  return absl::OkStatus();
}

std::vector<float> PixelPcaEmbedder::Preprocess(const GrayImage& image,
                                                int resolution) {
  return ResizeGray(image, resolution, resolution);
}

absl::StatusOr<std::unique_ptr<PixelPcaEmbedder>> PixelPcaEmbedder::FitImages(
    const PixelPcaOptions& options, const std::vector<GrayImage>& images) {
  RETURN_IF_ERROR(ValidatePixelPcaOptions(options));
  const size_t d = static_cast<size_t>(options.resolution) * options.resolution;
  std::vector<float> rows;
  rows.reserve(images.size() * d);
  for (size_t i = 0; i < images.size(); ++i) {
    const GrayImage& image = images[i];
    if (image.width < 1 || image.height < 1 ||
        image.pixels.size() != static_cast<size_t>(image.width) * image.height) {
      return absl::InvalidArgumentError(
          absl::StrCat("images[", i, "]: empty or pixel count != size"));
    }
    const std::vector<float> row = Preprocess(image, options.resolution);
    rows.insert(rows.end(), row.begin(), row.end());
  }
  return Fit(options, rows);
}

absl::StatusOr<std::unique_ptr<PixelPcaEmbedder>> PixelPcaEmbedder::Fit(
    const PixelPcaOptions& options, const std::vector<float>& rows) {
  RETURN_IF_ERROR(ValidatePixelPcaOptions(options));
  const int64_t d = static_cast<int64_t>(options.resolution) * options.resolution;
  if (rows.size() % d != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rows: ", rows.size(), " floats is not a multiple of resolution^2 = ", d));
  }
  RETURN_IF_ERROR(CheckFinite(rows, "rows"));
  const int64_t n = static_cast<int64_t>(rows.size()) / d;
  if (n < options.components + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("fitting needs at least components + 1 = ",
                     options.components + 1, " images, got ", n));
  }
  auto embedder = std::unique_ptr<PixelPcaEmbedder>(new PixelPcaEmbedder());
  embedder->options_ = options;
  embedder->fitted_images_ = n;
  const int k = options.components;
  try {
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::from_blob(const_cast<float*>(rows.data()),
                                             {n, d}, torch::kFloat);
    torch::Tensor mean = torch::zeros({d}, torch::kDouble);
    if (options.center) mean = x.to(torch::kDouble).mean(0);
    // Covariance in double, a block of rows at a time.
    torch::Tensor cov = torch::zeros({d, d}, torch::kDouble);
    constexpr int64_t kBlock = 8192;
    for (int64_t b = 0; b < n; b += kBlock) {
      const torch::Tensor xb =
          x.slice(0, b, std::min(n, b + kBlock)).to(torch::kDouble) - mean;
      cov.addmm_(xb.t(), xb);
    }
    cov.div_(static_cast<double>(options.center ? n - 1 : n));
    auto [evals, evecs] = torch::linalg_eigh(cov);  // ascending
    evals = evals.flip(0).slice(0, 0, k).clamp_min(0);
    evecs = evecs.flip(1).slice(1, 0, k).t().contiguous();  // [k, d]
    // Eigenvectors are defined up to sign: make each one's largest entry
    // positive so a refit on the same data gives the same vectors.
    const torch::Tensor pivot = evecs.abs().argmax(1, /*keepdim=*/true);
    evecs.mul_(evecs.gather(1, pivot).sign().clamp_min(0) * 2 - 1);
    const double eps =
        options.whitening_epsilon * std::max(evals[0].item<double>(), 1e-12);
    const torch::Tensor scale = (evals + eps).pow(-options.whitening / 2);
    const torch::Tensor projection =
        (evecs * scale.unsqueeze(1)).to(torch::kFloat).contiguous();
    const torch::Tensor mean_f = mean.to(torch::kFloat).contiguous();
    const torch::Tensor evals_f = evals.to(torch::kFloat).contiguous();
    embedder->mean_.assign(mean_f.data_ptr<float>(),
                           mean_f.data_ptr<float>() + d);
    embedder->projection_.assign(projection.data_ptr<float>(),
                                 projection.data_ptr<float>() + k * d);
    embedder->eigenvalues_.assign(evals_f.data_ptr<float>(),
                                  evals_f.data_ptr<float>() + k);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("pixel-PCA fit failed: ", e.what_without_backtrace()));
  }
  embedder->Finish();
  return embedder;
}

void PixelPcaEmbedder::Finish() {
  uint32_t crc = Crc32c(OptionsString(options_));
  crc = Crc32c(FloatBytes(mean_), crc);
  crc = Crc32c(FloatBytes(projection_), crc);
  crc = Crc32c(FloatBytes(eigenvalues_), crc);
  state_crc_ = crc;
  fingerprint_ = absl::StrFormat("%s %s state=%08x", kFormat,
                                 OptionsString(options_), crc);
}

absl::StatusOr<std::vector<float>> PixelPcaEmbedder::Embed(
    const GrayImage& image) const {
  if (image.width < 1 || image.height < 1 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image: ", image.width, "x", image.height, " with ",
        image.pixels.size(), " pixels; expected a non-empty image"));
  }
  std::vector<float> x = Preprocess(image, options_.resolution);
  RETURN_IF_ERROR(CheckFinite(x, "image"));
  const int d = input_dim();
  for (int i = 0; i < d; ++i) x[i] -= mean_[i];
  std::vector<float> out(dimension());
  for (int j = 0; j < dimension(); ++j) {
    const float* p = &projection_[static_cast<size_t>(j) * d];
    double acc = 0;
    for (int i = 0; i < d; ++i) acc += static_cast<double>(p[i]) * x[i];
    out[j] = static_cast<float>(acc);
  }
  NormalizeRow(out.data(), dimension());
  return out;
}

absl::StatusOr<std::vector<float>> PixelPcaEmbedder::EmbedRows(
    const std::vector<float>& rows) const {
  const int64_t d = input_dim();
  if (rows.size() % d != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rows: ", rows.size(), " floats is not a multiple of ", d));
  }
  RETURN_IF_ERROR(CheckFinite(rows, "rows"));
  const int64_t n = static_cast<int64_t>(rows.size()) / d;
  const int64_t k = dimension();
  std::vector<float> out(n * k);
  try {
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::from_blob(const_cast<float*>(rows.data()),
                                             {n, d}, torch::kFloat);
    const torch::Tensor mean = torch::from_blob(
        const_cast<float*>(mean_.data()), {d}, torch::kFloat);
    const torch::Tensor p = torch::from_blob(
        const_cast<float*>(projection_.data()), {k, d}, torch::kFloat);
    torch::Tensor y = torch::from_blob(out.data(), {n, k}, torch::kFloat);
    torch::mm_out(y, x - mean, p.t());
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("pixel-PCA projection failed: ", e.what_without_backtrace()));
  }
  for (int64_t i = 0; i < n; ++i) NormalizeRow(&out[i * k], k);
  return out;
}

std::string PixelPcaEmbedder::Serialize() const {
  const int64_t d = input_dim();
  const int64_t k = dimension();
  SafetensorsWriter w;
  // Sizes match by construction, so these cannot fail.
  (void)w.AddTensor("mean", DType::kF32, {d}, FloatBytes(mean_));
  (void)w.AddTensor("projection", DType::kF32, {k, d}, FloatBytes(projection_));
  (void)w.AddTensor("eigenvalues", DType::kF32, {k}, FloatBytes(eigenvalues_));
  w.SetMetadata("format", kFormat);
  w.SetMetadata("resolution", absl::StrCat(options_.resolution));
  w.SetMetadata("components", absl::StrCat(options_.components));
  w.SetMetadata("whitening", absl::StrFormat("%.17g", options_.whitening));
  w.SetMetadata("whitening_epsilon",
                absl::StrFormat("%.17g", options_.whitening_epsilon));
  w.SetMetadata("center", options_.center ? "1" : "0");
  w.SetMetadata("fitted_images", absl::StrCat(fitted_images_));
  w.SetMetadata("state_crc32c", absl::StrFormat("%08x", state_crc_));
  return w.Serialize();
}

absl::StatusOr<std::unique_ptr<PixelPcaEmbedder>>
PixelPcaEmbedder::Deserialize(absl::string_view bytes) {
  auto file_or = SafetensorsFile::FromBuffer(std::string(bytes));
  if (!file_or.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pixel-PCA state: ", file_or.status().message()));
  }
  const SafetensorsFile& file = **file_or;
  const auto& m = file.metadata();
  ASSIGN_OR_RETURN(std::string format, Meta(m, "format"));
  if (format != kFormat) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pixel-PCA state: format ", QuoteUserInput(format), ", expected ",
        kFormat));
  }
  PixelPcaOptions o;
  int64_t fitted = 0;
  ASSIGN_OR_RETURN(std::string res, Meta(m, "resolution"));
  ASSIGN_OR_RETURN(std::string comps, Meta(m, "components"));
  ASSIGN_OR_RETURN(std::string white, Meta(m, "whitening"));
  ASSIGN_OR_RETURN(std::string eps, Meta(m, "whitening_epsilon"));
  ASSIGN_OR_RETURN(std::string center, Meta(m, "center"));
  ASSIGN_OR_RETURN(std::string fitted_s, Meta(m, "fitted_images"));
  ASSIGN_OR_RETURN(std::string crc_s, Meta(m, "state_crc32c"));
  uint32_t crc = 0;
  if (!absl::SimpleAtoi(res, &o.resolution) ||
      !absl::SimpleAtoi(comps, &o.components) ||
      !absl::SimpleAtod(white, &o.whitening) ||
      !absl::SimpleAtod(eps, &o.whitening_epsilon) ||
      (center != "0" && center != "1") ||
      !absl::SimpleAtoi(fitted_s, &fitted) ||
      !absl::SimpleHexAtoi(crc_s, &crc)) {
    return absl::InvalidArgumentError(
        "pixel-PCA state: unparsable metadata value");
  }
  o.center = center == "1";
  RETURN_IF_ERROR(ValidatePixelPcaOptions(o));
  auto embedder = std::unique_ptr<PixelPcaEmbedder>(new PixelPcaEmbedder());
  embedder->options_ = o;
  embedder->fitted_images_ = fitted;
  const int64_t d = embedder->input_dim();
  const int64_t k = o.components;
  ASSIGN_OR_RETURN(embedder->mean_, ReadTensor(file, "mean", {d}));
  ASSIGN_OR_RETURN(embedder->projection_,
                   ReadTensor(file, "projection", {k, d}));
  ASSIGN_OR_RETURN(embedder->eigenvalues_,
                   ReadTensor(file, "eigenvalues", {k}));
  embedder->Finish();
  if (embedder->state_crc_ != crc) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "pixel-PCA state: checksum %08x does not match the recorded %08x",
        embedder->state_crc_, crc));
  }
  return embedder;
}

}  // namespace similarity
}  // namespace recsys
