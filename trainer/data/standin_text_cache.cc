#include "trainer/data/standin_text_cache.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "model/items_table.h"
#include "model/hidden_state_cache.h"
#include "nlohmann/json.hpp"

namespace recsys {
namespace {

uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t HashString(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Adds a unit-variance pseudo-random vector keyed by `key` to `acc`.
void AddHashedVector(uint64_t key, float scale, std::vector<float>* acc) {
  uint64_t state = key;
  constexpr float kToUnit = 1.0f / 9007199254740992.0f;  // 2^-53
  for (float& x : *acc) {
    const float u = static_cast<float>(SplitMix(state) >> 11) * kToUnit;  // [0,1)
    x += scale * (u - 0.5f) * 3.4641016f;  // uniform with variance 1
  }
}

}  // namespace

std::vector<std::string> TitleTokens(const std::string& title) {
  std::string t = absl::StrReplaceAll(
      title, {{"&amp;", "&"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&lt;", "<"}, {"&gt;", ">"}});
  std::vector<std::string> out;
  std::string cur;
  for (char ch : t) {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      cur += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::vector<float> StandinTextStates(const std::string& title,
                                     const StandinTextOptions& o) {
  const std::vector<std::string> tokens = TitleTokens(title);
  std::vector<float> uni(o.hidden_size, 0.0f), bi(o.hidden_size, 0.0f);
  for (const auto& tok : tokens) AddHashedVector(HashString(tok, o.seed), 1.0f, &uni);
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    AddHashedVector(HashString(tokens[i] + " " + tokens[i + 1], o.seed + 1), 1.0f, &bi);
  }
  const float nu = tokens.empty() ? 1.0f : 1.0f / std::sqrt(1.0f * tokens.size());
  const float nb = tokens.size() < 2 ? 1.0f : 1.0f / std::sqrt(tokens.size() - 1.0f);
  std::vector<float> out(static_cast<size_t>(o.num_states) * o.hidden_size);
  for (int s = 0; s < o.num_states; ++s) {
    const float a = o.num_states > 1 ? 0.5f * s / (o.num_states - 1) : 0.0f;
    for (int d = 0; d < o.hidden_size; ++d) {
      out[static_cast<size_t>(s) * o.hidden_size + d] = (1 - a) * uni[d] * nu + a * bi[d] * nb;
    }
  }
  return out;
}

namespace {
constexpr char kBackbonePrefix[] = "hashed-bow-standin-";

std::string BackboneConfig(const StandinTextOptions& o) {
  return absl::StrFormat(
      "{\"kind\":\"hashed bag of title unigrams/bigrams, random projection\","
      "\"seed\":%d,\"num_states\":%d,\"hidden_size\":%d}",
      o.seed, o.num_states, o.hidden_size);
}
}  // namespace

std::string StandinBackboneFingerprint(const StandinTextOptions& o) {
  return absl::StrFormat("standin-bow-%08x", Crc32c(BackboneConfig(o)));
}

absl::StatusOr<StandinTextOptions> StandinTextOptionsOf(const HiddenStateCacheInfo& info) {
  if (info.modality != "text" || info.backbone.rfind(kBackbonePrefix, 0) != 0) {
    return absl::NotFoundError(absl::StrCat("backbone '", info.backbone,
                                            "' is not the hashed bag-of-words stand-in"));
  }
  nlohmann::json j = nlohmann::json::parse(info.backbone_config, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("seed") ||
      !j["seed"].is_number_unsigned() || !j.contains("num_states") ||
      !j["num_states"].is_number_integer() || !j.contains("hidden_size") ||
      !j["hidden_size"].is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "backbone_config of the stand-in cache is not {seed, num_states, hidden_size}: ",
        info.backbone_config.substr(0, 200)));
  }
  StandinTextOptions o;
  o.seed = j["seed"].get<uint64_t>();
  o.num_states = j["num_states"].get<int>();
  o.hidden_size = j["hidden_size"].get<int>();
  if (o.num_states <= 0 || o.hidden_size <= 0) {
    return absl::InvalidArgumentError("backbone_config of the stand-in cache: non-positive shape");
  }
  return o;
}

absl::Status WriteStandinTextCache(const std::string& items_tsv,
                                   const std::string& out_path,
                                   const StandinTextOptions& o) {
  ASSIGN_OR_RETURN(std::string contents, ReadFileToString(items_tsv));
  ASSIGN_OR_RETURN(std::vector<ItemTableRow> items, ParseItemTable(contents, items_tsv));
  if (items.empty()) return absl::InvalidArgumentError(items_tsv + ": no items");
  // Only the keys and titles are held; each item's states are computed as the
  // file is written (a 20k-item 13 x 768 cache would be 830 MB of floats).
  std::vector<std::string> keys;
  std::vector<uint64_t> content;
  keys.reserve(items.size());
  content.reserve(items.size());
  for (const ItemTableRow& item : items) {
    keys.push_back(item.key);
    content.push_back(ItemContentFingerprint(item.value));
  }
  const size_t per_item = static_cast<size_t>(o.num_states) * o.hidden_size;
  HiddenStateCacheInfo info;
  info.modality = "text";
  info.backbone = absl::StrFormat("%s%dx%d", kBackbonePrefix, o.num_states - 1, o.hidden_size);
  info.backbone_config = BackboneConfig(o);
  info.fingerprint = absl::StrFormat("standin-bow-%d-%08x", o.seed, Crc32c(contents));
  info.backbone_fingerprint = StandinBackboneFingerprint(o);
  info.standin = true;
  return WriteHiddenStateCache(
      out_path, keys,
      [&](int64_t row, float* out) {
        const std::vector<float> s = StandinTextStates(items[row].value, o);
        std::copy(s.begin(), s.begin() + per_item, out);
        return absl::OkStatus();
      },
      o.num_states, o.hidden_size, o.dtype, info, content);
}

}  // namespace recsys
