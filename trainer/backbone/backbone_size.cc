#include "trainer/backbone/backbone_size.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/user_input.h"

namespace recsys {
namespace {

// "AxB" with both positive; false otherwise.
bool ParsePair(const std::string& text, char sep, int* a, int* b) {
  std::vector<std::string> parts = absl::StrSplit(text, sep);
  return parts.size() == 2 && absl::SimpleAtoi(parts[0], a) && absl::SimpleAtoi(parts[1], b) &&
         *a > 0 && *b > 0;
}

// A stand-in's size is bounded: "1000x100000" parsed, and its job worker
// allocated until the machine ran out of memory. 12 x HIDDEN^2 parameters a
// layer (attention 4 H^2, feed-forward 8 H^2 at width 4 H): BERT-large's 24
// layers of 1024 have 302M.
constexpr int kMaxLayers = 48;
constexpr int kMaxHidden = 8192;
constexpr int64_t kMaxLayerParameters = 400'000'000;
constexpr int kMaxImage = 4096;
constexpr int64_t kMaxPatches = 1024;  // tokens a ViT image becomes (ViT-L/14 at 336: 576)

absl::Status CheckStandInSize(const std::string& field, const std::string& size, int layers,
                              int hidden) {
  if (layers <= kMaxLayers && hidden <= kMaxHidden &&
      12 * int64_t{layers} * hidden * hidden <= kMaxLayerParameters) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": a stand-in of at most ", kMaxLayers, " layers, HIDDEN at most ", kMaxHidden,
      " and 12 x LAYERS x HIDDEN^2 at most ", kMaxLayerParameters / 1000000,
      "M parameters (BERT-large: 302M), got ", QuoteUserInput(size)));
}

}  // namespace

absl::StatusOr<BertConfig> JobBertConfig(const std::string& field, const std::string& size) {
  int layers = 0, hidden = 0;
  if (!ParsePair(size.empty() ? "6x256" : size, 'x', &layers, &hidden) || hidden % 4 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": expected LAYERSxHIDDEN (HIDDEN a multiple of 4), e.g. 6x256, got ",
        QuoteUserInput(size)));
  }
  RETURN_IF_ERROR(CheckStandInSize(field, size, layers, hidden));
  BertConfig c;
  c.num_hidden_layers = layers;
  c.hidden_size = hidden;
  c.num_attention_heads = 4;
  c.intermediate_size = 4 * hidden;
  return c;
}

absl::StatusOr<ViTConfig> JobViTConfig(const std::string& field, const std::string& size) {
  const std::string text = size.empty() ? "4x192@224/16" : size;
  std::vector<std::string> parts = absl::StrSplit(text, absl::MaxSplits('@', 1));
  int layers = 0, hidden = 0, image = 224, patch = 16;
  const bool ok = ParsePair(parts[0], 'x', &layers, &hidden) && hidden % 64 == 0 &&
                  (parts.size() == 1 || ParsePair(parts[1], '/', &image, &patch)) &&
                  image % patch == 0;
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        field,
        ": expected LAYERSxHIDDEN[@IMAGE/PATCH] (HIDDEN a multiple of 64, IMAGE a multiple "
        "of PATCH), e.g. 4x192 or 2x64@32/8, got ",
        QuoteUserInput(size)));
  }
  RETURN_IF_ERROR(CheckStandInSize(field, size, layers, hidden));
  const int64_t patches = int64_t{image / patch} * (image / patch);
  if (image > kMaxImage || patches > kMaxPatches) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": IMAGE at most ", kMaxImage, " and (IMAGE / PATCH)^2 at most ", kMaxPatches,
        " patches, got ", QuoteUserInput(size), " (", patches, " patches)"));
  }
  ViTConfig c;
  c.num_hidden_layers = layers;
  c.hidden_size = hidden;
  c.num_attention_heads = hidden / 64;
  c.intermediate_size = 4 * hidden;
  c.image_size = image;
  c.patch_size = patch;
  return c;
}

absl::StatusOr<ViTConfig> CacheViTConfig(const std::string& field,
                                         const HiddenStateCacheInfo& cache) {
  if (absl::StartsWith(cache.backbone, "synthetic-")) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, ": its backbone ", QuoteUserInput(cache.backbone),
        " is synthetic (random demo states, not computed from any image): it cannot encode "
        "new or changed items"));
  }
  if (!absl::StartsWith(cache.backbone, "vit")) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, ": its backbone ", QuoteUserInput(cache.backbone),
        " is not a ViT this trainer can re-create"));
  }
  absl::StatusOr<ViTConfig> config = ParseViTConfig(cache.backbone_config);
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": its backbone_config is not a ViT config: ", config.status().message()));
  }
  return config;
}

}  // namespace recsys
