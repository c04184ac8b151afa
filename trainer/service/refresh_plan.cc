#include "trainer/service/refresh_plan.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/user_input.h"

namespace recsys {

absl::StatusOr<RefreshPlan> PlanRefresh(const ModelVersionManifest& parent,
                                        const std::vector<std::string>& parent_keys,
                                        const std::vector<ItemTableRow>& catalog,
                                        const HiddenStateCache& cache) {
  const std::string version = absl::StrCat("version ", parent.version);
  const NetworkConfig& net = parent.network;
  if (net.model != "iisan") {
    return absl::FailedPreconditionError(absl::StrCat(
        "spec.refresh.version: ", version, " is a ", QuoteUserInput(net.model),
        " model; only iisan versions embed items from their content (an ID table "
        "cannot embed a new item)"));
  }
  int text = -1;
  for (size_t i = 0; i < net.modalities.size(); ++i) {
    if (net.modalities[i].modality == "text") {
      text = static_cast<int>(i);
    } else {
      return absl::FailedPreconditionError(absl::StrCat(
          "spec.refresh.version: ", version, " has an ", QuoteUserInput(net.modalities[i].modality),
          " side; refreshing versions with an image side is not supported yet "
          "(text-only versions refresh)"));
    }
  }
  if (text < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("spec.refresh.version: ", version, " has no text modality"));
  }
  const ModalityConfig& m = net.modalities[text];
  if (m.backbone_fingerprint.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "spec.refresh.version: ", version, "'s manifest has no config.modalities[", text,
        "].backbone_fingerprint (it was written before versions recorded their backbone), so "
        "new items cannot be checked against its backbone; retrain it to refresh it"));
  }
  if (cache.info().modality != "text") {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.refresh.text_cache: expected a text cache, got modality ",
        QuoteUserInput(cache.info().modality)));
  }
  if (cache.info().backbone_fingerprint != m.backbone_fingerprint) {
    return absl::FailedPreconditionError(absl::StrCat(
        "spec.refresh.text_cache: its backbone fingerprint ",
        QuoteUserInput(cache.info().backbone_fingerprint.empty() ? "(none)"
                                                                  : cache.info().backbone_fingerprint),
        " (", QuoteUserInput(cache.info().backbone), ") is not ", version, "'s ",
        QuoteUserInput(m.backbone_fingerprint), " (", QuoteUserInput(m.backbone),
        "): states of another backbone cannot feed its side network"));
  }
  const int64_t max_state = m.states.empty() ? 0 : *std::max_element(m.states.begin(), m.states.end());
  if (cache.hidden_size() != m.hidden_size || cache.num_states() <= max_state) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.refresh.text_cache: its states are [", cache.num_states(), " x ", cache.hidden_size(),
        "]; ", version, " needs width ", m.hidden_size, " and state ", max_state));
  }
  if (catalog.empty()) {
    return absl::InvalidArgumentError("spec.refresh.items_table: the updated catalog has no items");
  }

  absl::flat_hash_map<std::string, int64_t> parent_row_of;
  parent_row_of.reserve(parent_keys.size());
  for (size_t i = 0; i < parent_keys.size(); ++i) parent_row_of.emplace(parent_keys[i], i);
  const bool same_cache = !m.cache_fingerprint.empty() &&
                          cache.info().fingerprint == m.cache_fingerprint;

  RefreshPlan plan;
  plan.modality = text;
  const size_t n = catalog.size();
  plan.keys.reserve(n);
  plan.contents.reserve(n);
  plan.content_fingerprints.reserve(n);
  plan.cache_row.reserve(n);
  plan.parent_row.reserve(n);
  absl::flat_hash_set<std::string> in_catalog;
  in_catalog.reserve(n);
  for (const ItemTableRow& item : catalog) {
    in_catalog.insert(item.key);
    const uint64_t fp = ItemContentFingerprint(item.value);
    const int64_t row = cache.RowOf(item.key);
    const std::optional<uint64_t> cached = row >= 0 ? cache.ContentFingerprint(row) : std::nullopt;
    auto p = parent_row_of.find(item.key);
    int64_t cache_row = -1, parent_row = -1;
    if (row >= 0 && cached.has_value() && *cached == fp) {
      cache_row = row;
      if (same_cache && p != parent_row_of.end()) {
        parent_row = p->second;
        ++plan.reused;
      } else {
        ++plan.reembedded;
      }
    } else {
      ++plan.recomputed;
      if (row < 0) {
        ++plan.added;
      } else if (cached.has_value()) {
        ++plan.changed;
      } else {
        ++plan.unknown;
      }
    }
    plan.keys.push_back(item.key);
    plan.contents.push_back(item.value);
    plan.content_fingerprints.push_back(fp);
    plan.cache_row.push_back(cache_row);
    plan.parent_row.push_back(parent_row);
  }
  for (const std::string& k : parent_keys) {
    if (in_catalog.contains(k)) continue;
    ++plan.removed;
    if (plan.removed_keys.size() < 5) plan.removed_keys.push_back(k);
  }
  return plan;
}

}  // namespace recsys
