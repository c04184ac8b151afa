#include "model/encoders/backbone_config.h"

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace recsys {
namespace {

using json = nlohmann::json;

absl::Status CheckPositive(int64_t value, absl::string_view name) {
  if (value < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be >= 1, got ", value));
  }
  return absl::OkStatus();
}

absl::Status CheckHeads(int64_t hidden, int64_t heads, double eps) {
  if (hidden % heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden_size (", hidden,
                     ") must be a multiple of num_attention_heads (", heads,
                     ")"));
  }
  if (!(eps > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer_norm_eps must be > 0, got ", eps));
  }
  return absl::OkStatus();
}

absl::StatusOr<json> ParseObject(absl::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("config is not a JSON object");
  }
  return j;
}

template <typename T>
absl::Status Read(const json& j, const char* key, T* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config field ", key, " must be a number"));
  }
  *out = it->get<T>();
  return absl::OkStatus();
}

absl::Status CheckActivation(const json& j) {
  auto it = j.find("hidden_act");
  if (it != j.end() && !(it->is_string() && it->get<std::string>() == "gelu")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config field hidden_act must be \"gelu\" (erf), got ", it->dump()));
  }
  return absl::OkStatus();
}

absl::Status ReadFloats(const json& j, const char* key,
                        std::vector<float>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config field ", key, " must be an array of numbers"));
  }
  out->clear();
  for (const json& v : *it) {
    if (!v.is_number()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config field ", key, " must be an array of numbers"));
    }
    out->push_back(v.get<float>());
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status BertConfig::Validate() const {
  RETURN_IF_ERROR(CheckPositive(vocab_size, "vocab_size"));
  RETURN_IF_ERROR(CheckPositive(hidden_size, "hidden_size"));
  RETURN_IF_ERROR(CheckPositive(num_hidden_layers, "num_hidden_layers"));
  RETURN_IF_ERROR(CheckPositive(num_attention_heads, "num_attention_heads"));
  RETURN_IF_ERROR(CheckPositive(intermediate_size, "intermediate_size"));
  RETURN_IF_ERROR(
      CheckPositive(max_position_embeddings, "max_position_embeddings"));
  RETURN_IF_ERROR(CheckPositive(type_vocab_size, "type_vocab_size"));
  return CheckHeads(hidden_size, num_attention_heads, layer_norm_eps);
}

std::string BertConfig::ToJson() const {
  json j = {{"model_type", "bert"},
            {"vocab_size", vocab_size},
            {"hidden_size", hidden_size},
            {"num_hidden_layers", num_hidden_layers},
            {"num_attention_heads", num_attention_heads},
            {"intermediate_size", intermediate_size},
            {"max_position_embeddings", max_position_embeddings},
            {"type_vocab_size", type_vocab_size},
            {"layer_norm_eps", layer_norm_eps},
            {"hidden_act", "gelu"}};
  return j.dump();
}

absl::Status ViTConfig::Validate() const {
  RETURN_IF_ERROR(CheckPositive(hidden_size, "hidden_size"));
  RETURN_IF_ERROR(CheckPositive(num_hidden_layers, "num_hidden_layers"));
  RETURN_IF_ERROR(CheckPositive(num_attention_heads, "num_attention_heads"));
  RETURN_IF_ERROR(CheckPositive(intermediate_size, "intermediate_size"));
  RETURN_IF_ERROR(CheckPositive(image_size, "image_size"));
  RETURN_IF_ERROR(CheckPositive(patch_size, "patch_size"));
  RETURN_IF_ERROR(CheckPositive(num_channels, "num_channels"));
  if (image_size % patch_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("image_size (", image_size,
                     ") must be a multiple of patch_size (", patch_size, ")"));
  }
  if (static_cast<int64_t>(image_mean.size()) != num_channels ||
      static_cast<int64_t>(image_std.size()) != num_channels) {
    return absl::InvalidArgumentError(
        absl::StrCat("image_mean and image_std need num_channels (",
                     num_channels, ") entries"));
  }
  for (float s : image_std) {
    if (!(s > 0)) return absl::InvalidArgumentError("image_std must be > 0");
  }
  return CheckHeads(hidden_size, num_attention_heads, layer_norm_eps);
}

std::string ViTConfig::ToJson() const {
  json j = {{"model_type", "vit"},
            {"hidden_size", hidden_size},
            {"num_hidden_layers", num_hidden_layers},
            {"num_attention_heads", num_attention_heads},
            {"intermediate_size", intermediate_size},
            {"image_size", image_size},
            {"patch_size", patch_size},
            {"num_channels", num_channels},
            {"layer_norm_eps", layer_norm_eps},
            {"hidden_act", "gelu"},
            {"image_mean", image_mean},
            {"image_std", image_std}};
  return j.dump();
}

absl::StatusOr<BertConfig> ParseBertConfig(absl::string_view json_text) {
  ASSIGN_OR_RETURN(json j, ParseObject(json_text));
  BertConfig c;
  RETURN_IF_ERROR(CheckActivation(j));
  RETURN_IF_ERROR(Read(j, "vocab_size", &c.vocab_size));
  RETURN_IF_ERROR(Read(j, "hidden_size", &c.hidden_size));
  RETURN_IF_ERROR(Read(j, "num_hidden_layers", &c.num_hidden_layers));
  RETURN_IF_ERROR(Read(j, "num_attention_heads", &c.num_attention_heads));
  RETURN_IF_ERROR(Read(j, "intermediate_size", &c.intermediate_size));
  RETURN_IF_ERROR(
      Read(j, "max_position_embeddings", &c.max_position_embeddings));
  RETURN_IF_ERROR(Read(j, "type_vocab_size", &c.type_vocab_size));
  RETURN_IF_ERROR(Read(j, "layer_norm_eps", &c.layer_norm_eps));
  RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<ViTConfig> ParseViTConfig(absl::string_view json_text) {
  ASSIGN_OR_RETURN(json j, ParseObject(json_text));
  ViTConfig c;
  RETURN_IF_ERROR(CheckActivation(j));
  RETURN_IF_ERROR(Read(j, "hidden_size", &c.hidden_size));
  RETURN_IF_ERROR(Read(j, "num_hidden_layers", &c.num_hidden_layers));
  RETURN_IF_ERROR(Read(j, "num_attention_heads", &c.num_attention_heads));
  RETURN_IF_ERROR(Read(j, "intermediate_size", &c.intermediate_size));
  RETURN_IF_ERROR(Read(j, "image_size", &c.image_size));
  RETURN_IF_ERROR(Read(j, "patch_size", &c.patch_size));
  RETURN_IF_ERROR(Read(j, "num_channels", &c.num_channels));
  RETURN_IF_ERROR(Read(j, "layer_norm_eps", &c.layer_norm_eps));
  c.image_mean.assign(c.num_channels, 0.5f);
  c.image_std.assign(c.num_channels, 0.5f);
  RETURN_IF_ERROR(ReadFloats(j, "image_mean", &c.image_mean));
  RETURN_IF_ERROR(ReadFloats(j, "image_std", &c.image_std));
  RETURN_IF_ERROR(c.Validate());
  return c;
}

std::string ResolveConfigPath(const std::string& config_path,
                              const std::string& weights_path) {
  if (!config_path.empty() || weights_path.empty()) return config_path;
  const size_t slash = weights_path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : weights_path.substr(0, slash);
  const std::string beside = JoinPath(dir, "config.json");
  return PathExists(beside) ? beside : "";
}

namespace {

template <typename Config, typename Parse>
absl::StatusOr<Config> LoadConfig(const Config& fallback,
                                  const std::string& config_path,
                                  const std::string& weights_path,
                                  Parse parse) {
  Config config = fallback;
  const std::string path = ResolveConfigPath(config_path, weights_path);
  if (!path.empty()) {
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
    ASSIGN_OR_RETURN(config, parse(text));
  }
  RETURN_IF_ERROR(config.Validate());
  return config;
}

}  // namespace

absl::StatusOr<BertConfig> LoadBertConfig(const BertConfig& fallback,
                                          const std::string& config_path,
                                          const std::string& weights_path) {
  return LoadConfig(fallback, config_path, weights_path, ParseBertConfig);
}

absl::StatusOr<ViTConfig> LoadViTConfig(const ViTConfig& fallback,
                                        const std::string& config_path,
                                        const std::string& weights_path) {
  return LoadConfig(fallback, config_path, weights_path, ParseViTConfig);
}

}  // namespace recsys
