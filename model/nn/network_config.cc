#include "model/nn/network_config.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace recsys {
namespace {

using json = nlohmann::json;

absl::Status Missing(absl::string_view field, absl::string_view expected) {
  return absl::InvalidArgumentError(
      absl::StrCat("config.", field, ": expected ", expected));
}

absl::StatusOr<int64_t> Int(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_number_integer()) return Missing(field, "an integer");
  return it->get<int64_t>();
}

absl::StatusOr<bool> Bool(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_boolean()) return Missing(field, "true or false");
  return it->get<bool>();
}

absl::StatusOr<std::string> String(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) return Missing(field, "a string");
  return it->get<std::string>();
}

absl::Status Range(absl::string_view field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) {
    return absl::InvalidArgumentError(absl::StrCat("config.", field, ": expected ", lo,
                                                   "..", hi, ", got ", v));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateNetworkConfig(const NetworkConfig& c) {
  if (c.model != "iisan" && c.model != "sasrec") {
    return absl::InvalidArgumentError(
        absl::StrCat("config.model: expected \"iisan\" or \"sasrec\", got \"",
                     c.model.substr(0, 64), "\""));
  }
  RETURN_IF_ERROR(Range("num_items", c.num_items, 1, int64_t{1} << 31));
  RETURN_IF_ERROR(Range("embedding_dim", c.embedding_dim, 1, 65536));
  RETURN_IF_ERROR(Range("max_len", c.max_len, 1, 100000));
  RETURN_IF_ERROR(Range("num_heads", c.num_heads, 1, c.embedding_dim));
  if (c.embedding_dim % c.num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.num_heads: must divide embedding_dim ", c.embedding_dim, ", got ",
        c.num_heads));
  }
  RETURN_IF_ERROR(Range("num_layers", c.num_layers, 1, 64));
  RETURN_IF_ERROR(Range("ffn_dim", c.ffn_dim, 1, 1 << 20));
  if (!(c.dropout >= 0.0 && c.dropout < 1.0)) {
    return absl::InvalidArgumentError("config.dropout: expected a value in [0, 1)");
  }
  if (c.model == "iisan") {
    RETURN_IF_ERROR(Range("bottleneck", c.bottleneck, 1, 65536));
    if (c.modalities.empty() || c.modalities.size() > 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.modalities: expected 1 or 2 modalities, got ", c.modalities.size()));
    }
    for (size_t i = 0; i < c.modalities.size(); ++i) {
      const ModalityConfig& m = c.modalities[i];
      const std::string at = absl::StrCat("modalities[", i, "].");
      if (m.modality != "text" && m.modality != "image") {
        return Missing(at + "modality", "\"text\" or \"image\"");
      }
      RETURN_IF_ERROR(Range(at + "hidden_size", m.hidden_size, 1, 65536));
      if (m.states.empty()) return Missing(at + "states", "a non-empty list of indices");
      for (int64_t s : m.states) RETURN_IF_ERROR(Range(at + "states[]", s, 0, 4096));
    }
    if (c.modalities.size() == 2 && c.modalities[0].states.size() != c.modalities[1].states.size() &&
        c.inter_path) {
      return absl::InvalidArgumentError(
          "config.modalities: the inter-modal path needs the same number of blocks per modality");
    }
  }
  return absl::OkStatus();
}

void NetworkConfigToJson(const NetworkConfig& c, json* out) {
  json& j = *out;
  if (!j.is_object()) j = json::object();
  j["model"] = c.model;
  j["num_items"] = c.num_items;
  j["embedding_dim"] = c.embedding_dim;
  j["max_len"] = c.max_len;
  j["num_heads"] = c.num_heads;
  j["num_layers"] = c.num_layers;
  j["ffn_dim"] = c.ffn_dim;
  j["dropout"] = c.dropout;
  j["bottleneck"] = c.bottleneck;
  j["inter_path"] = c.inter_path;
  j["standardize_states"] = c.standardize_states;
  json mods = json::array();
  for (const ModalityConfig& m : c.modalities) {
    json mj = {{"modality", m.modality},
               {"hidden_size", m.hidden_size},
               {"states", m.states},
               {"backbone", m.backbone},
               {"cache_fingerprint", m.cache_fingerprint},
               {"standin", m.standin}};
    // Absent (not empty) in versions trained on caches that did not record
    // their backbone: the refresh names the missing field.
    if (!m.backbone_fingerprint.empty()) mj["backbone_fingerprint"] = m.backbone_fingerprint;
    mods.push_back(std::move(mj));
  }
  if (c.model == "iisan") j["modalities"] = mods;
}

absl::StatusOr<NetworkConfig> NetworkConfigFromJson(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("config: expected a JSON object");
  NetworkConfig c;
  ASSIGN_OR_RETURN(c.model, String(j, "model"));
  ASSIGN_OR_RETURN(c.num_items, Int(j, "num_items"));
  ASSIGN_OR_RETURN(c.embedding_dim, Int(j, "embedding_dim"));
  ASSIGN_OR_RETURN(c.max_len, Int(j, "max_len"));
  ASSIGN_OR_RETURN(c.num_heads, Int(j, "num_heads"));
  ASSIGN_OR_RETURN(c.num_layers, Int(j, "num_layers"));
  ASSIGN_OR_RETURN(c.ffn_dim, Int(j, "ffn_dim"));
  auto dropout = j.find("dropout");
  if (dropout == j.end() || !dropout->is_number()) return Missing("dropout", "a number");
  c.dropout = dropout->get<double>();
  // Versions written before standardisation existed did not standardise.
  auto standardize = j.find("standardize_states");
  if (standardize != j.end()) {
    ASSIGN_OR_RETURN(c.standardize_states, Bool(j, "standardize_states"));
  }
  if (c.model == "iisan") {
    ASSIGN_OR_RETURN(c.bottleneck, Int(j, "bottleneck"));
    ASSIGN_OR_RETURN(c.inter_path, Bool(j, "inter_path"));
    auto mods = j.find("modalities");
    if (mods == j.end() || !mods->is_array()) return Missing("modalities", "a list");
    for (size_t i = 0; i < mods->size(); ++i) {
      const json& m = (*mods)[i];
      const std::string at = absl::StrCat("modalities[", i, "]");
      if (!m.is_object()) return Missing(at, "an object");
      ModalityConfig mc;
      ASSIGN_OR_RETURN(mc.modality, String(m, "modality"));
      ASSIGN_OR_RETURN(mc.hidden_size, Int(m, "hidden_size"));
      auto states = m.find("states");
      if (states == m.end() || !states->is_array()) return Missing(at + ".states", "a list");
      for (const json& s : *states) {
        if (!s.is_number_integer()) return Missing(at + ".states[]", "integers");
        mc.states.push_back(s.get<int64_t>());
      }
      // Descriptive fields: absent in hand-written configs.
      if (m.contains("backbone")) {
        ASSIGN_OR_RETURN(mc.backbone, String(m, "backbone"));
      }
      if (m.contains("cache_fingerprint")) {
        ASSIGN_OR_RETURN(mc.cache_fingerprint, String(m, "cache_fingerprint"));
      }
      if (m.contains("standin")) {
        ASSIGN_OR_RETURN(mc.standin, Bool(m, "standin"));
      }
      if (m.contains("backbone_fingerprint")) {
        ASSIGN_OR_RETURN(mc.backbone_fingerprint, String(m, "backbone_fingerprint"));
      }
      c.modalities.push_back(std::move(mc));
    }
  }
  RETURN_IF_ERROR(ValidateNetworkConfig(c));
  return c;
}

}  // namespace recsys
