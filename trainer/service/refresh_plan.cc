#include "trainer/service/refresh_plan.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/user_input.h"

namespace recsys {

std::string RefreshCacheField(const std::string& modality) {
  return absl::StrCat("spec.refresh.", modality == "image" ? "image" : "text", "_cache");
}

namespace {

absl::Status CheckIisan(const ModelVersionManifest& parent) {
  if (parent.network.model == "iisan") return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "spec.refresh.version: version ", parent.version, " is a ",
      QuoteUserInput(parent.network.model),
      " model; only iisan versions embed items from their content (an ID table "
      "cannot embed a new item)"));
}

}  // namespace

absl::StatusOr<std::vector<RefreshSideInput>> RefreshSidesFor(
    const ModelVersionManifest& parent, const std::vector<ItemTableRow>& catalog,
    const HiddenStateCache* text_cache, const HiddenStateCache* image_cache,
    const std::string& images_table) {
  RETURN_IF_ERROR(CheckIisan(parent));
  bool has_text = false, has_image = false;
  for (const ModalityConfig& m : parent.network.modalities) {
    has_text |= m.modality == "text";
    has_image |= m.modality == "image";
  }
  const std::string version = absl::StrCat("version ", parent.version);
  if (!has_text && text_cache != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.refresh.text_cache: must be empty: ", version, " has no text side"));
  }
  if (!has_image && (image_cache != nullptr || !images_table.empty())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.refresh.", image_cache != nullptr ? "image_cache" : "images_table",
        ": must be empty: ", version, " has no image side"));
  }
  std::vector<RefreshSideInput> sides;
  for (const ModalityConfig& m : parent.network.modalities) {
    RefreshSideInput in;
    if (m.modality == "text") {
      if (text_cache == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "spec.refresh.text_cache: a file path is required (", version, " has a text side)"));
      }
      in.cache = text_cache;
      for (const ItemTableRow& r : catalog) {
        in.values.push_back(r.value);
        in.content_fingerprints.push_back(ItemContentFingerprint(r.value));
      }
    } else if (m.modality == "image") {
      if (image_cache == nullptr || images_table.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "spec.refresh.", image_cache == nullptr ? "image_cache" : "images_table",
            ": a file path is required (", version, " has an image side)"));
      }
      in.cache = image_cache;
      absl::StatusOr<std::vector<ItemTableRow>> rows = ReadItemTable(images_table);
      if (!rows.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("spec.refresh.images_table: ", rows.status().message()));
      }
      const size_t slash = images_table.rfind('/');
      const std::string base = slash == std::string::npos ? "." : images_table.substr(0, slash);
      absl::flat_hash_map<std::string, std::string> path_of;
      for (const ItemTableRow& r : *rows) {
        path_of[r.key] = !r.value.empty() && r.value[0] == '/' ? r.value : JoinPath(base, r.value);
      }
      int64_t missing = 0;
      std::string example;
      for (const ItemTableRow& r : catalog) {
        auto it = path_of.find(r.key);
        if (it == path_of.end()) {
          if (missing++ == 0) example = r.key;
          continue;
        }
        absl::StatusOr<std::string> bytes = ReadFileToString(it->second);
        if (!bytes.ok()) {
          return absl::NotFoundError(absl::StrCat("spec.refresh.images_table: the image of ",
                                                  QuoteUserInput(r.key), ", ",
                                                  QuoteUserInput(it->second), ", cannot be read"));
        }
        in.values.push_back(it->second);
        in.content_fingerprints.push_back(ItemContentFingerprint(*bytes));
      }
      if (missing > 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "spec.refresh.images_table: no image for ", missing, " of the catalog's ",
            catalog.size(), " items, e.g. ", QuoteUserInput(example)));
      }
    } else {
      return absl::FailedPreconditionError(absl::StrCat(
          "spec.refresh.version: ", version, " has an unknown modality ",
          QuoteUserInput(m.modality)));
    }
    sides.push_back(std::move(in));
  }
  return sides;
}

absl::StatusOr<RefreshPlan> PlanRefresh(const ModelVersionManifest& parent,
                                        const std::vector<std::string>& parent_keys,
                                        const std::vector<std::string>& keys,
                                        std::vector<RefreshSideInput> sides) {
  const std::string version = absl::StrCat("version ", parent.version);
  const NetworkConfig& net = parent.network;
  RETURN_IF_ERROR(CheckIisan(parent));
  if (net.modalities.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("spec.refresh.version: ", version, " has no modality"));
  }
  if (sides.size() != net.modalities.size()) {
    return absl::InternalError("PlanRefresh: one side per modality of the version is required");
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError("spec.refresh.items_table: the updated catalog has no items");
  }
  const size_t n = keys.size();
  RefreshPlan plan;
  plan.keys = keys;
  bool same_caches = true;
  for (size_t i = 0; i < sides.size(); ++i) {
    const ModalityConfig& m = net.modalities[i];
    const std::string field = RefreshCacheField(m.modality);
    RefreshSideInput& in = sides[i];
    if (m.backbone_fingerprint.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "spec.refresh.version: ", version, "'s manifest has no config.modalities[", i,
          "].backbone_fingerprint (it was written before versions recorded their backbone), so "
          "new items cannot be checked against its ", m.modality,
          " backbone; retrain it to refresh it"));
    }
    if (in.cache == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": ", version, " has a ", m.modality, " side; its cache is required"));
    }
    const HiddenStateCache& cache = *in.cache;
    if (cache.info().modality != m.modality) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": expected a ", m.modality,
                                                     " cache, got modality ",
                                                     QuoteUserInput(cache.info().modality)));
    }
    if (cache.info().backbone_fingerprint != m.backbone_fingerprint) {
      return absl::FailedPreconditionError(absl::StrCat(
          field, ": its backbone fingerprint ",
          QuoteUserInput(cache.info().backbone_fingerprint.empty() ? "(none)"
                                                                    : cache.info().backbone_fingerprint),
          " (", QuoteUserInput(cache.info().backbone), ") is not ", version, "'s ",
          QuoteUserInput(m.backbone_fingerprint), " (", QuoteUserInput(m.backbone),
          "): states of another backbone cannot feed its side network"));
    }
    const int64_t max_state =
        m.states.empty() ? 0 : *std::max_element(m.states.begin(), m.states.end());
    if (cache.hidden_size() != m.hidden_size || cache.num_states() <= max_state) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": its states are [", cache.num_states(), " x ", cache.hidden_size(), "]; ",
          version, " needs width ", m.hidden_size, " and state ", max_state));
    }
    if (in.values.size() != n || in.content_fingerprints.size() != n) {
      return absl::InternalError("PlanRefresh: a side's values do not match the catalog");
    }
    same_caches = same_caches && !m.cache_fingerprint.empty() &&
                  cache.info().fingerprint == m.cache_fingerprint;
    RefreshSidePlan side;
    side.modality = m.modality;
    side.config_index = static_cast<int>(i);
    side.cache = in.cache;
    side.values = std::move(in.values);
    side.content_fingerprints = std::move(in.content_fingerprints);
    plan.sides.push_back(std::move(side));
  }

  absl::flat_hash_map<std::string, int64_t> parent_row_of;
  parent_row_of.reserve(parent_keys.size());
  for (size_t i = 0; i < parent_keys.size(); ++i) parent_row_of.emplace(parent_keys[i], i);
  absl::flat_hash_set<std::string> in_catalog;
  in_catalog.reserve(n);
  for (RefreshSidePlan& side : plan.sides) side.cache_row.assign(n, -1);
  plan.parent_row.assign(n, -1);
  for (size_t k = 0; k < n; ++k) {
    const std::string& key = keys[k];
    in_catalog.insert(key);
    bool all_reused = true, in_any = false, any_changed = false;
    for (RefreshSidePlan& side : plan.sides) {
      const int64_t row = side.cache->RowOf(key);
      in_any |= row >= 0;
      const std::optional<uint64_t> cached =
          row >= 0 ? side.cache->ContentFingerprint(row) : std::nullopt;
      if (row >= 0 && cached.has_value() && *cached == side.content_fingerprints[k]) {
        side.cache_row[k] = row;
      } else {
        all_reused = false;
        any_changed |= row >= 0 && cached.has_value();
        ++side.encoded;
      }
    }
    auto p = parent_row_of.find(key);
    if (all_reused) {
      if (same_caches && p != parent_row_of.end()) {
        plan.parent_row[k] = p->second;
        ++plan.reused;
      } else {
        ++plan.reembedded;
      }
    } else {
      ++plan.recomputed;
      if (!in_any) {
        ++plan.added;
      } else if (any_changed) {
        ++plan.changed;
      } else {
        ++plan.unknown;
      }
    }
  }
  for (const std::string& k : parent_keys) {
    if (in_catalog.contains(k)) continue;
    ++plan.removed;
    if (plan.removed_keys.size() < 5) plan.removed_keys.push_back(k);
  }
  return plan;
}

}  // namespace recsys
