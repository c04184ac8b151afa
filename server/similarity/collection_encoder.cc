#include "server/similarity/collection_encoder.h"

#include <cmath>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "model/encoders/backbone_config.h"
#include "model/encoders/bert_text_encoder.h"
#include "model/encoders/encoder.h"
#include "common/validation.h"
#include "model/encoders/torchscript_encoder.h"
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

// INVALID_ARGUMENT unless every value is finite (a backbone that overflows,
// or a TorchScript module that returns NaN).
absl::Status CheckFinite(const std::vector<float>& v) {
  for (float x : v) {
    if (!std::isfinite(x)) {
      return absl::InvalidArgumentError("the encoder produced non-finite values for this input");
    }
  }
  return absl::OkStatus();
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

// A fixed text backbone (BERT or TorchScript): CLS of the last state, or
// the masked mean of the last layer; L2-normalised.
class BackboneTextEncoderImpl : public CollectionEncoder {
 public:
  BackboneTextEncoderImpl(absl::string_view kind, std::unique_ptr<TextEncoder> e, bool mean)
      : e_(std::move(e)),
        mean_(mean),
        fingerprint_(absl::StrCat(kind, "/", e_->info().name, mean ? " mean" : " cls",
                                  " l2 weights=", e_->info().fingerprint)) {}
  const std::string& fingerprint() const override { return fingerprint_; }
  int dimension() const override { return static_cast<int>(e_->info().hidden_size); }
  bool needs_fit() const override { return false; }
  std::string Serialize() const override { return ""; }
  absl::StatusOr<std::vector<float>> EmbedText(absl::string_view text) const override {
    if (text.empty()) return absl::InvalidArgumentError("text: must not be empty");
    std::vector<float> out;
    if (mean_) {
      ASSIGN_OR_RETURN(out, e_->EncodeMeanPooled({std::string(text)}));
      if (static_cast<int64_t>(out.size()) != e_->info().hidden_size) {
        return absl::InternalError("mean pooling returned another width");
      }
      Normalize(out.data(), dimension());
    } else {
      ASSIGN_OR_RETURN(std::vector<float> states, e_->Encode({std::string(text)}));
      out = LastCls(states, 1, e_->info());
    }
    RETURN_IF_ERROR(CheckFinite(out));
    return out;
  }

 private:
  std::unique_ptr<TextEncoder> e_;  // Encode is thread-safe (encoder.h)
  const bool mean_;
  std::string fingerprint_;
};

// A fixed image backbone (ViT or TorchScript): CLS of the last state,
// L2-normalised; grayscale replicated to RGB.
class BackboneImageEncoderImpl : public CollectionEncoder {
 public:
  BackboneImageEncoderImpl(absl::string_view kind, std::unique_ptr<ImageEncoder> e)
      : e_(std::move(e)),
        fingerprint_(absl::StrCat(kind, "/", e_->info().name, " cls l2 weights=",
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
    std::vector<float> out = LastCls(states, static_cast<int64_t>(rgbs.size()), e_->info());
    RETURN_IF_ERROR(CheckFinite(out));
    return out;
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

absl::Status CheckPooling(absl::string_view field, v1::Pooling pooling, bool mean_offered) {
  if (pooling != v1::POOLING_UNSPECIFIED && pooling != v1::POOLING_CLS &&
      pooling != v1::POOLING_MEAN) {
    return InvalidField(absl::StrCat(field, ".pooling"), "a Pooling value", absl::StrCat(pooling));
  }
  if (pooling == v1::POOLING_MEAN && !mean_offered) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".pooling: POOLING_MEAN is offered for text encoders only (an image "
        "backbone's CLS state is its embedding)"));
  }
  return absl::OkStatus();
}

// `s` with the field it concerns in front (the backbone's own messages do
// not know the request's field names).
absl::Status Prefixed(absl::string_view field, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(field, ": ", s.message()));
}

// Runs the new encoder once, so that a module of another width, or one
// that returns NaN or infinities, is refused at creation rather than at
// the first query.
absl::Status Probe(absl::string_view field, const CollectionEncoder& e, bool text,
                   int declared_dimension) {
  absl::StatusOr<std::vector<float>> v;
  if (text) {
    v = e.EmbedText("probe");
  } else {
    GrayImage g;
    g.width = g.height = 16;
    for (int i = 0; i < 256; ++i) g.pixels.push_back(static_cast<float>((i * 37) % 256) / 255.0f);
    v = e.ImageFeaturesBatch({g});
  }
  if (!v.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": the encoder fails on a probe input: ", v.status().message()));
  }
  if (declared_dimension > 0 && e.dimension() != declared_dimension) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".dimension: declared ", declared_dimension, ", but the module returns ",
        e.dimension(), "-wide states"));
  }
  if (static_cast<int>(v->size()) != e.dimension()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": the probe gave ", v->size(), " values, not ", e.dimension()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CollectionEncoder>> CreateTorchScript(
    const v1::TorchScriptEncoder& ts, bool text) {
  constexpr char kField[] = "config.encoder.torchscript";
  RETURN_IF_ERROR(CheckPooling(kField, ts.pooling(), text));
  if (ts.dimension() < 1 || ts.dimension() > 65536) {
    return InvalidField(absl::StrCat(kField, ".dimension"),
                        "the module's output width, 1..65536", absl::StrCat(ts.dimension()));
  }
  if (ts.path().empty() || !PathExists(ts.path())) {
    return absl::NotFoundError(absl::StrCat(kField, ".path: no TorchScript module at ",
                                            QuoteUserInput(ts.path())));
  }
  std::unique_ptr<CollectionEncoder> e;
  if (text) {
    if (ts.image_size() != 0 || ts.image_mean_size() != 0 || ts.image_std_size() != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          kField, ": image_size/image_mean/image_std are for image modules; this is a text "
          "collection"));
    }
    if (ts.vocab_path().empty() || !PathExists(ts.vocab_path())) {
      return absl::NotFoundError(absl::StrCat(kField, ".vocab_path: no WordPiece vocab.txt at ",
                                              QuoteUserInput(ts.vocab_path())));
    }
    if (ts.max_length() < 0 || ts.max_length() == 1 || ts.max_length() > 8192) {
      return InvalidField(absl::StrCat(kField, ".max_length"), "0 (128) or 2..8192",
                          absl::StrCat(ts.max_length()));
    }
    TorchScriptTextEncoderOptions o;
    o.module_path = ts.path();
    o.vocab_path = ts.vocab_path();
    o.max_length = ts.max_length() > 0 ? ts.max_length() : 128;
    absl::StatusOr<std::unique_ptr<TextEncoder>> made = CreateTorchScriptTextEncoder(o);
    if (!made.ok()) return Prefixed(kField, made.status());
    e = std::make_unique<BackboneTextEncoderImpl>("torchscript", std::move(*made),
                                                  ts.pooling() == v1::POOLING_MEAN);
  } else {
    if (!ts.vocab_path().empty() || ts.max_length() != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          kField, ": vocab_path/max_length are for text modules; this is an image collection"));
    }
    if (ts.image_size() < 0 || ts.image_size() > 4096) {
      return InvalidField(absl::StrCat(kField, ".image_size"), "0 (224) or 1..4096",
                          absl::StrCat(ts.image_size()));
    }
    TorchScriptImageEncoderOptions o;
    o.module_path = ts.path();
    if (ts.image_size() > 0) o.image_size = ts.image_size();
    for (const auto& [values, out, name] :
         {std::make_tuple(&ts.image_mean(), &o.image_mean, "image_mean"),
          std::make_tuple(&ts.image_std(), &o.image_std, "image_std")}) {
      if (values->empty()) continue;
      const bool std_dev = std::string(name) == "image_std";
      bool ok = values->size() == 3;
      for (float v : *values) ok = ok && std::isfinite(v) && (!std_dev || v > 0);
      if (!ok) {
        return InvalidField(absl::StrCat(kField, ".", name),
                            std_dev ? "3 positive finite values" : "3 finite values",
                            absl::StrCat(values->size(), " values"));
      }
      out->assign(values->begin(), values->end());
    }
    absl::StatusOr<std::unique_ptr<ImageEncoder>> made = CreateTorchScriptImageEncoder(o);
    if (!made.ok()) return Prefixed(kField, made.status());
    e = std::make_unique<BackboneImageEncoderImpl>("torchscript", std::move(*made));
  }
  RETURN_IF_ERROR(Probe(kField, *e, text, ts.dimension()));
  return e;
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
      RETURN_IF_ERROR(CheckPooling("config.encoder.bert", spec.bert().pooling(), true));
      BertTextEncoderOptions o;
      const std::string& dir = spec.bert().model_dir();
      o.vocab_path = JoinPath(dir, "vocab.txt");
      if (dir.empty() || !PathExists(o.vocab_path)) {
        return absl::NotFoundError(absl::StrCat("config.encoder.bert.model_dir: no vocab.txt in ",
                                                QuoteUserInput(dir)));
      }
      o.weights_path = Beside(dir, "model.safetensors");
      o.config_path = Beside(dir, "config.json");
      o.max_length = spec.bert().max_length();
      if (o.max_length <= 0) {  // 128, or the model's maximum when that is less
        absl::StatusOr<BertConfig> config = LoadBertConfig(o.config, o.config_path, o.weights_path);
        if (!config.ok()) return Prefixed("config.encoder.bert", config.status());
        o.max_length = static_cast<int>(std::min<int64_t>(128, config->max_position_embeddings));
      }
      absl::StatusOr<std::unique_ptr<TextEncoder>> made = CreateBertTextEncoder(o);
      if (!made.ok()) return Prefixed("config.encoder.bert", made.status());
      auto e = std::make_unique<BackboneTextEncoderImpl>(
          "bert", std::move(*made), spec.bert().pooling() == v1::POOLING_MEAN);
      RETURN_IF_ERROR(Probe("config.encoder.bert", *e, true, 0));
      return std::unique_ptr<CollectionEncoder>(std::move(e));
    }
    case v1::EncoderSpec::kVit: {
      if (!image) return absl::InvalidArgumentError("config.encoder.vit: an image encoder; this is a text collection");
      RETURN_IF_ERROR(CheckPooling("config.encoder.vit", spec.vit().pooling(), false));
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
      absl::StatusOr<std::unique_ptr<ImageEncoder>> made = CreateViTImageEncoder(o);
      if (!made.ok()) return Prefixed("config.encoder.vit", made.status());
      auto e = std::make_unique<BackboneImageEncoderImpl>("vit", std::move(*made));
      RETURN_IF_ERROR(Probe("config.encoder.vit", *e, false, 0));
      return std::unique_ptr<CollectionEncoder>(std::move(e));
    }
    case v1::EncoderSpec::kTorchscript:
      return CreateTorchScript(spec.torchscript(), text);
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
