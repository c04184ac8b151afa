#include "server/similarity/collection_encoder.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "model/encoders/bert_text_encoder.h"
#include "model/encoders/encoder.h"
#include "model/encoders/vit_image_encoder.h"
#include "server/similarity/hashed_text_embedder.h"
#include "server/similarity/pixel_pca_embedder.h"

namespace recsys {
namespace similarity {
namespace {

absl::Status NotThisKind(absl::string_view what) {
  return absl::FailedPreconditionError(
      absl::StrCat("this collection's encoder does not ", what));
}

void Normalize(float* v, int d) {
  double norm = 0;
  for (int i = 0; i < d; ++i) norm += double{v[i]} * v[i];
  if (norm <= 0) return;
  const float inv = static_cast<float>(1.0 / std::sqrt(norm));
  for (int i = 0; i < d; ++i) v[i] *= inv;
}

// The last hidden state's CLS row of each input, L2-normalised.
std::vector<float> LastCls(const std::vector<float>& states, int64_t n,
                           const BackboneInfo& info) {
  const int64_t d = info.hidden_size;
  std::vector<float> out(n * d);
  for (int64_t i = 0; i < n; ++i) {
    const float* last = states.data() + (i * info.num_states + info.num_states - 1) * d;
    std::copy(last, last + d, out.begin() + i * d);
    Normalize(out.data() + i * d, static_cast<int>(d));
  }
  return out;
}

class HashedTextEncoderImpl : public CollectionEncoder {
 public:
  explicit HashedTextEncoderImpl(std::unique_ptr<HashedTextEmbedder> e) : e_(std::move(e)) {}
  const std::string& fingerprint() const override { return e_->fingerprint(); }
  int dimension() const override { return e_->dimension(); }
  bool needs_fit() const override { return true; }
  std::string Serialize() const override { return e_->Serialize(); }
  absl::StatusOr<std::vector<float>> EmbedText(absl::string_view text) const override {
    return e_->Embed(text);
  }
  absl::StatusOr<std::unique_ptr<CollectionEncoder>> FitTexts(
      const std::vector<std::string>& texts) const override {
    ASSIGN_OR_RETURN(std::unique_ptr<HashedTextEmbedder> fitted,
                     HashedTextEmbedder::Fit(e_->options(), texts));
    return std::unique_ptr<CollectionEncoder>(new HashedTextEncoderImpl(std::move(fitted)));
  }

 private:
  std::unique_ptr<HashedTextEmbedder> e_;
};

// Before the first Publish there is no PCA: only the options.
class PixelPcaEncoderImpl : public CollectionEncoder {
 public:
  PixelPcaEncoderImpl(PixelPcaOptions options, std::unique_ptr<PixelPcaEmbedder> e)
      : options_(options), e_(std::move(e)) {
    fingerprint_ = e_ ? e_->fingerprint()
                      : absl::StrCat("pixel_pca/v1 res=", options.resolution,
                                     " k=", options.components, " unfitted");
  }
  const std::string& fingerprint() const override { return fingerprint_; }
  int dimension() const override { return options_.components; }
  bool needs_fit() const override { return true; }
  std::string Serialize() const override { return e_ ? e_->Serialize() : ""; }
  absl::StatusOr<std::vector<float>> ImageFeatures(const GrayImage& image) const override {
    if (image.width <= 0 || image.height <= 0 ||
        image.pixels.size() != static_cast<size_t>(image.width) * image.height) {
      return absl::InvalidArgumentError("image: empty or inconsistent size");
    }
    for (float p : image.pixels) {
      if (!std::isfinite(p)) return absl::InvalidArgumentError("image: non-finite pixel");
    }
    return PixelPcaEmbedder::Preprocess(image, options_.resolution);
  }
  absl::StatusOr<std::vector<float>> EmbedFeatureRows(const std::vector<float>& rows,
                                                      int64_t n) const override {
    if (!e_) return absl::FailedPreconditionError("pixel_pca: not fitted (nothing published)");
    (void)n;
    return e_->EmbedRows(rows);
  }
  absl::StatusOr<std::unique_ptr<CollectionEncoder>> FitFeatureRows(
      const std::vector<float>& rows) const override {
    ASSIGN_OR_RETURN(std::unique_ptr<PixelPcaEmbedder> fitted,
                     PixelPcaEmbedder::Fit(options_, rows));
    return std::unique_ptr<CollectionEncoder>(
        new PixelPcaEncoderImpl(options_, std::move(fitted)));
  }

 private:
  PixelPcaOptions options_;
  std::unique_ptr<PixelPcaEmbedder> e_;
  std::string fingerprint_;
};

class BertEncoderImpl : public CollectionEncoder {
 public:
  explicit BertEncoderImpl(std::unique_ptr<TextEncoder> e)
      : e_(std::move(e)),
        fingerprint_(absl::StrCat("bert/", e_->info().name, " cls l2 weights=",
                                  e_->info().fingerprint)) {}
  const std::string& fingerprint() const override { return fingerprint_; }
  int dimension() const override { return static_cast<int>(e_->info().hidden_size); }
  bool needs_fit() const override { return false; }
  std::string Serialize() const override { return ""; }
  absl::StatusOr<std::vector<float>> EmbedText(absl::string_view text) const override {
    if (text.empty()) return absl::InvalidArgumentError("text: must not be empty");
    ASSIGN_OR_RETURN(std::vector<float> states, e_->Encode({std::string(text)}));
    return LastCls(states, 1, e_->info());
  }

 private:
  std::unique_ptr<TextEncoder> e_;  // Encode is thread-safe (encoder.h)
  std::string fingerprint_;
};

class VitEncoderImpl : public CollectionEncoder {
 public:
  explicit VitEncoderImpl(std::unique_ptr<ImageEncoder> e)
      : e_(std::move(e)),
        fingerprint_(absl::StrCat("vit/", e_->info().name, " cls l2 weights=",
                                  e_->info().fingerprint)) {}
  const std::string& fingerprint() const override { return fingerprint_; }
  int dimension() const override { return static_cast<int>(e_->info().hidden_size); }
  bool needs_fit() const override { return false; }
  std::string Serialize() const override { return ""; }
  absl::StatusOr<std::vector<float>> ImageFeatures(const GrayImage& image) const override {
    return ImageFeaturesBatch({image});
  }
  absl::StatusOr<std::vector<float>> ImageFeaturesBatch(
      const std::vector<GrayImage>& images) const override {
    std::vector<RgbImage> rgbs;
    for (const GrayImage& image : images) {
      ASSIGN_OR_RETURN(RgbImage rgb, ToRgb(image));
      rgbs.push_back(std::move(rgb));
    }
    if (rgbs.empty()) return std::vector<float>();
    ASSIGN_OR_RETURN(std::vector<float> states, e_->Encode(rgbs));
    return LastCls(states, static_cast<int64_t>(rgbs.size()), e_->info());
  }
  static absl::StatusOr<RgbImage> ToRgb(const GrayImage& image) {
    if (image.width <= 0 || image.height <= 0 ||
        image.pixels.size() != static_cast<size_t>(image.width) * image.height) {
      return absl::InvalidArgumentError("image: empty or inconsistent size");
    }
    RgbImage rgb;
    rgb.width = image.width;
    rgb.height = image.height;
    rgb.pixels.resize(image.pixels.size() * 3);
    for (size_t i = 0; i < image.pixels.size(); ++i) {
      const float p = image.pixels[i];
      const float c = std::isfinite(p) ? std::min(1.0f, std::max(0.0f, p)) : 0.0f;
      const uint8_t v = static_cast<uint8_t>(std::lround(c * 255.0f));
      rgb.pixels[3 * i] = rgb.pixels[3 * i + 1] = rgb.pixels[3 * i + 2] = v;
    }
    return rgb;
  }
  absl::StatusOr<std::vector<float>> EmbedFeatureRows(const std::vector<float>& rows,
                                                      int64_t) const override {
    return rows;  // the features are the vectors
  }

 private:
  std::unique_ptr<ImageEncoder> e_;
  std::string fingerprint_;
};

absl::StatusOr<HashedTextOptions> HashedOptions(const v1::HashedTextEncoder& p) {
  HashedTextOptions o;
  if (p.dimension() != 0) o.dimension = p.dimension();
  if (p.min_ngram() != 0) o.min_ngram = p.min_ngram();
  if (p.max_ngram() != 0) o.max_ngram = p.max_ngram();
  if (p.word_weight() != 0) o.word_weight = p.word_weight();
  o.seed = p.seed();
  absl::Status s = ValidateHashedTextOptions(o);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("encoder.hashed_text: ", s.message()));
  return o;
}

absl::StatusOr<PixelPcaOptions> PcaOptions(const v1::PixelPcaEncoder& p) {
  PixelPcaOptions o;
  if (p.resolution() != 0) o.resolution = p.resolution();
  if (p.components() != 0) o.components = p.components();
  if (p.whitening() != 0) o.whitening = p.whitening();
  if (p.whitening_epsilon() != 0) o.whitening_epsilon = p.whitening_epsilon();
  o.center = !p.no_centering();
  absl::Status s = ValidatePixelPcaOptions(o);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("encoder.pixel_pca: ", s.message()));
  return o;
}

absl::Status CheckPooling(absl::string_view field, v1::Pooling pooling) {
  if (pooling == v1::POOLING_MEAN) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".pooling: POOLING_MEAN is not offered (model/encoders return CLS states only)"));
  }
  return absl::OkStatus();
}

std::string Beside(const std::string& dir, const char* name) {
  const std::string path = JoinPath(dir, name);
  return PathExists(path) ? path : "";
}

absl::StatusOr<std::unique_ptr<CollectionEncoder>> Create(v1::SimilarityKind kind,
                                                          const v1::EncoderSpec& spec) {
  const bool text = kind == v1::SIMILARITY_TRANSLATION_EXAMPLES;
  const bool image = kind == v1::SIMILARITY_IMAGE_CASES;
  if (!text && !image) {
    return absl::InvalidArgumentError(
        "config.kind: SIMILARITY_TRANSLATION_EXAMPLES or SIMILARITY_IMAGE_CASES required");
  }
  switch (spec.encoder_case()) {
    case v1::EncoderSpec::ENCODER_NOT_SET:
      if (text) {
        ASSIGN_OR_RETURN(auto e, HashedTextEmbedder::Create(HashedTextOptions{}));
        return std::unique_ptr<CollectionEncoder>(new HashedTextEncoderImpl(std::move(e)));
      }
      return std::unique_ptr<CollectionEncoder>(new PixelPcaEncoderImpl(PixelPcaOptions{}, nullptr));
    case v1::EncoderSpec::kHashedText: {
      if (!text) return absl::InvalidArgumentError("config.encoder.hashed_text: a text encoder; this is an image collection");
      ASSIGN_OR_RETURN(HashedTextOptions o, HashedOptions(spec.hashed_text()));
      ASSIGN_OR_RETURN(auto e, HashedTextEmbedder::Create(o));
      return std::unique_ptr<CollectionEncoder>(new HashedTextEncoderImpl(std::move(e)));
    }
    case v1::EncoderSpec::kPixelPca: {
      if (!image) return absl::InvalidArgumentError("config.encoder.pixel_pca: an image encoder; this is a text collection");
      ASSIGN_OR_RETURN(PixelPcaOptions o, PcaOptions(spec.pixel_pca()));
      return std::unique_ptr<CollectionEncoder>(new PixelPcaEncoderImpl(o, nullptr));
    }
    case v1::EncoderSpec::kBert: {
      if (!text) return absl::InvalidArgumentError("config.encoder.bert: a text encoder; this is an image collection");
      RETURN_IF_ERROR(CheckPooling("config.encoder.bert", spec.bert().pooling()));
      BertTextEncoderOptions o;
      const std::string& dir = spec.bert().model_dir();
      o.vocab_path = JoinPath(dir, "vocab.txt");
      if (dir.empty() || !PathExists(o.vocab_path)) {
        return absl::NotFoundError(absl::StrCat("config.encoder.bert.model_dir: no vocab.txt in ",
                                                QuoteUserInput(dir)));
      }
      o.weights_path = Beside(dir, "model.safetensors");
      o.config_path = Beside(dir, "config.json");
      o.max_length = spec.bert().max_length() > 0 ? spec.bert().max_length() : 128;
      ASSIGN_OR_RETURN(std::unique_ptr<TextEncoder> e, CreateBertTextEncoder(o));
      return std::unique_ptr<CollectionEncoder>(new BertEncoderImpl(std::move(e)));
    }
    case v1::EncoderSpec::kVit: {
      if (!image) return absl::InvalidArgumentError("config.encoder.vit: an image encoder; this is a text collection");
      RETURN_IF_ERROR(CheckPooling("config.encoder.vit", spec.vit().pooling()));
      ViTImageEncoderOptions o;
      const std::string& dir = spec.vit().model_dir();
      if (!dir.empty()) {
        if (!PathExists(dir)) {
          return absl::NotFoundError(absl::StrCat("config.encoder.vit.model_dir: ",
                                                  QuoteUserInput(dir), " does not exist"));
        }
        o.weights_path = Beside(dir, "model.safetensors");
        o.config_path = Beside(dir, "config.json");
      }
      ASSIGN_OR_RETURN(std::unique_ptr<ImageEncoder> e, CreateViTImageEncoder(o));
      return std::unique_ptr<CollectionEncoder>(new VitEncoderImpl(std::move(e)));
    }
    case v1::EncoderSpec::kTorchscript:
      return absl::UnimplementedError(
          "config.encoder.torchscript: TorchScript encoders are not attached to collections yet");
  }
  return absl::InvalidArgumentError("config.encoder: unknown encoder");
}

}  // namespace

absl::StatusOr<std::vector<float>> CollectionEncoder::EmbedText(absl::string_view) const {
  return NotThisKind("embed text");
}
absl::StatusOr<std::vector<float>> CollectionEncoder::ImageFeatures(const GrayImage&) const {
  return NotThisKind("embed images");
}
absl::StatusOr<std::vector<float>> CollectionEncoder::ImageFeaturesBatch(
    const std::vector<GrayImage>& images) const {
  std::vector<float> out;
  for (const GrayImage& image : images) {
    ASSIGN_OR_RETURN(std::vector<float> f, ImageFeatures(image));
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}
absl::StatusOr<std::vector<float>> CollectionEncoder::EmbedFeatureRows(const std::vector<float>&,
                                                                       int64_t) const {
  return NotThisKind("embed images");
}
absl::StatusOr<std::unique_ptr<CollectionEncoder>> CollectionEncoder::FitTexts(
    const std::vector<std::string>&) const {
  return NotThisKind("fit on text");
}
absl::StatusOr<std::unique_ptr<CollectionEncoder>> CollectionEncoder::FitFeatureRows(
    const std::vector<float>&) const {
  return NotThisKind("fit on images");
}

absl::StatusOr<std::unique_ptr<CollectionEncoder>> CreateCollectionEncoder(
    v1::SimilarityKind kind, const v1::EncoderSpec& spec) {
  return Create(kind, spec);
}

absl::StatusOr<std::unique_ptr<CollectionEncoder>> RestoreCollectionEncoder(
    v1::SimilarityKind kind, const v1::EncoderSpec& spec, absl::string_view state) {
  ASSIGN_OR_RETURN(std::unique_ptr<CollectionEncoder> base, Create(kind, spec));
  if (!base->needs_fit()) return base;
  if (kind == v1::SIMILARITY_TRANSLATION_EXAMPLES) {
    ASSIGN_OR_RETURN(auto e, HashedTextEmbedder::Deserialize(state));
    return std::unique_ptr<CollectionEncoder>(new HashedTextEncoderImpl(std::move(e)));
  }
  ASSIGN_OR_RETURN(auto e, PixelPcaEmbedder::Deserialize(state));
  const PixelPcaOptions o = e->options();
  return std::unique_ptr<CollectionEncoder>(new PixelPcaEncoderImpl(o, std::move(e)));
}

}  // namespace similarity
}  // namespace recsys
