#include "trainer/data/item_state_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace recsys {

absl::StatusOr<std::unique_ptr<ItemStateStore>> ItemStateStore::Create(
    const Options& options, const std::vector<std::string>& item_keys) {
  if (options.cache_paths.empty()) {
    return absl::InvalidArgumentError("at least one hidden-state cache is needed");
  }
  std::unique_ptr<ItemStateStore> store(new ItemStateStore());
  store->num_items_ = static_cast<int64_t>(item_keys.size());
  for (const std::string& path : options.cache_paths) {
    Modality m;
    ASSIGN_OR_RETURN(m.cache, HiddenStateCache::Open(path));
    m.name = m.cache->info().modality;
    m.info = m.cache->info();
    m.hidden_size = m.cache->hidden_size();
    if (m.name != "text" && m.name != "image") {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": modality \"", m.name, "\" (expected text or image)"));
    }
    if (store->IndexOf(m.name) >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("two caches of modality ", m.name));
    }
    ASSIGN_OR_RETURN(m.states, SelectStates(static_cast<int>(m.cache->num_states()),
                                            options.layers));
    m.path = path;
    m.row_of_item.resize(item_keys.size());
    std::vector<std::string> missing;
    for (size_t i = 0; i < item_keys.size(); ++i) {
      m.row_of_item[i] = m.cache->RowOf(item_keys[i]);
      if (m.row_of_item[i] < 0) {
        if (!options.allow_missing_items) {
          return absl::NotFoundError(absl::StrCat(
              path, ": item \"", item_keys[i], "\" has no cached states"));
        }
        missing.push_back(item_keys[i]);
      }
    }
    if (!missing.empty()) {
      const size_t n = item_keys.size();
      const std::string what = absl::StrFormat(
          "%s: %d of the %d catalog items (%.1f%%) have no cached states (first: \"%s\")",
          path, missing.size(), n, 100.0 * missing.size() / n,
          absl::StrJoin(missing.begin(), missing.begin() + std::min<size_t>(3, missing.size()),
                        "\", \""));
      if (static_cast<double>(missing.size()) > options.max_missing_fraction * n) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s; allow_missing_items gives such items all-zero states, but at most %.0f%% "
            "of the catalog may be missing (is this the cache of another catalog?)",
            what, 100.0 * options.max_missing_fraction));
      }
      LOG(WARNING) << what << ": they get all-zero states (allow_missing_items) and "
                   << "cannot be told apart by their content";
    }
    store->modalities_.push_back(std::move(m));
  }
  std::stable_sort(store->modalities_.begin(), store->modalities_.end(),
                   [](const Modality& a, const Modality& b) {
                     return a.name == "text" && b.name != "text";
                   });
  for (int m = 0; m < store->num_modalities(); ++m) {
    RETURN_IF_ERROR(store->ScanStates(m, options));
    Modality& mod = store->modalities_[m];
    const int64_t values = store->num_items_ * store->num_blocks(m) * mod.hidden_size;
    if (values > 0 && options.dense_max_bytes > 0 &&
        values * static_cast<int64_t>(sizeof(float)) <= options.dense_max_bytes) {
      std::vector<int64_t> all(store->num_items_);
      for (int64_t i = 0; i < store->num_items_; ++i) all[i] = i;
      std::vector<float> dense(values);
      RETURN_IF_ERROR(store->Gather(m, all, dense.data()));
      mod.dense = std::move(dense);
      mod.cache.reset();  // unmapped: the dense copy replaces its pages
    }
  }
  return store;
}

namespace {

uint64_t HashFloats(const float* x, int64_t n) {
  uint64_t h = 1469598103934665603ull;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof(bits));
    h = (h ^ bits) * 1099511628211ull;
    h ^= h >> 29;
  }
  return h;
}

}  // namespace

absl::Status ItemStateStore::ScanStates(int m, const Options& options) {
  Modality& mod = modalities_[m];
  const int64_t h = hidden_size(m);
  const int64_t width = num_blocks(m) * h;
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < num_items_; ++i) {
    if (mod.row_of_item[i] >= 0) ids.push_back(i);
  }
  if (ids.empty()) return absl::OkStatus();
  std::vector<double> sum(width, 0.0), sum_sq(width, 0.0);
  std::vector<float> lo(width, std::numeric_limits<float>::infinity());
  std::vector<float> hi(width, -std::numeric_limits<float>::infinity());
  std::vector<uint64_t> hashes;
  hashes.reserve(ids.size());
  int64_t non_finite = 0, bad_items = 0;
  std::string first_bad;
  constexpr size_t kChunk = 1024;
  std::vector<float> buf;
  for (size_t begin = 0; begin < ids.size(); begin += kChunk) {
    const std::vector<int64_t> chunk(ids.begin() + begin,
                                     ids.begin() + std::min(ids.size(), begin + kChunk));
    buf.resize(chunk.size() * width);
    RETURN_IF_ERROR(Gather(m, chunk, buf.data()));  // statistics not set yet: raw
    for (size_t r = 0; r < chunk.size(); ++r) {
      const float* x = buf.data() + r * width;
      int64_t bad_here = 0;
      for (int64_t j = 0; j < width; ++j) {
        if (!std::isfinite(x[j])) {
          if (non_finite + bad_here == 0) {
            first_bad = absl::StrFormat(
                "item \"%s\" (cache row %d) state %d dim %d is %f",
                mod.cache->keys()[mod.row_of_item[chunk[r]]], mod.row_of_item[chunk[r]],
                mod.states[j / h], j % h, x[j]);
          }
          ++bad_here;
          continue;
        }
        sum[j] += x[j];
        sum_sq[j] += static_cast<double>(x[j]) * x[j];
        lo[j] = std::min(lo[j], x[j]);
        hi[j] = std::max(hi[j], x[j]);
      }
      non_finite += bad_here;
      bad_items += bad_here > 0;
      hashes.push_back(HashFloats(x, width));
    }
  }
  const int64_t n = static_cast<int64_t>(ids.size());
  if (non_finite > 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: tensor hidden_states: %s (expected finite values); %d non-finite values in %d "
        "of the %d catalog items' selected states",
        mod.path, first_bad, non_finite, bad_items, n));
  }
  // Per (state, dim): the spread over the catalog, and which vary at all.
  const double dn = static_cast<double>(n);
  std::vector<double> mean(width), sd(width);
  int64_t varying = 0;
  double between = 0, energy = 0;
  for (int64_t j = 0; j < width; ++j) {
    mean[j] = sum[j] / dn;
    sd[j] = std::sqrt(std::max(0.0, sum_sq[j] / dn - mean[j] * mean[j]));
    varying += hi[j] > lo[j];
    between += sd[j] * sd[j];
    energy += sum_sq[j] / dn;
  }
  if (n >= 2 && varying == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: tensor hidden_states: the selected states (%s) are the same for all %d catalog "
        "items (expected states that differ between items): the cache carries no item signal",
        mod.path, absl::StrJoin(mod.states, ","), n));
  }
  std::sort(hashes.begin(), hashes.end());
  int64_t distinct = 0, shared = 0;
  for (size_t i = 0; i < hashes.size();) {
    size_t j = i;
    while (j < hashes.size() && hashes[j] == hashes[i]) ++j;
    ++distinct;
    if (j - i > 1) shared += static_cast<int64_t>(j - i);
    i = j;
  }
  if (distinct < n) {
    const std::string what = absl::StrFormat(
        "%s: %d of the %d catalog items share their selected states with another item "
        "(%d distinct state sets)",
        mod.path, shared, n, distinct);
    if (static_cast<double>(n - distinct) > options.max_duplicate_fraction * dn) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s; at most %.0f%% may (expected a cache whose items differ): a degenerate cache",
          what, 100.0 * options.max_duplicate_fraction));
    }
    LOG(WARNING) << what << ": the model cannot tell these items apart by content; "
                 << "full-ranking evaluation counts the ties against them";
  }
  if (!options.standardize && energy > 0 && between < 1e-2 * energy) {
    LOG(WARNING) << absl::StrFormat(
        "%s: the items' states share a large common component (variance between items "
        "is %.2g of their mean square): the side network may not separate them; "
        "standardize the states (train --standardize_states)",
        mod.path, between / energy);
  }
  if (!options.standardize) return absl::OkStatus();
  mod.mean.resize(width);
  mod.inv_std.resize(width);
  for (int64_t j = 0; j < width; ++j) {
    mod.mean[j] = static_cast<float>(mean[j]);
    // Constant over the catalog (up to F16 rounding): carries no signal.
    mod.inv_std[j] = sd[j] > 1e-4 * (std::fabs(mean[j]) + 1e-3)
                         ? static_cast<float>(1.0 / sd[j])
                         : 0.0f;
    // The largest standardized magnitude this dimension can produce.
    const double reach = std::max(std::fabs(hi[j] - mean[j]), std::fabs(lo[j] - mean[j])) *
                         static_cast<double>(mod.inv_std[j]);
    if (!std::isfinite(mod.mean[j]) || !std::isfinite(mod.inv_std[j]) ||
        !(reach <= std::numeric_limits<float>::max())) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: standardizing state %d dim %d gives non-finite values (mean %g, std %g over "
          "%d items; expected finite float statistics)",
          mod.path, mod.states[j / h], j % h, mean[j], sd[j], n));
    }
  }
  return absl::OkStatus();
}

int ItemStateStore::IndexOf(const std::string& name) const {
  for (size_t i = 0; i < modalities_.size(); ++i) {
    if (modalities_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

absl::Status ItemStateStore::Gather(int m, const std::vector<int64_t>& ids,
                                    float* out) const {
  const Modality& mod = modalities_[m];
  if (!mod.dense.empty()) {
    const int64_t width = num_blocks(m) * mod.hidden_size;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] >= num_items_) {
        return absl::InvalidArgumentError(
            absl::StrCat("item id ", ids[i], " outside [0, ", num_items_, ")"));
      }
      std::memcpy(out + static_cast<int64_t>(i) * width, mod.dense.data() + ids[i] * width,
                  static_cast<size_t>(width) * sizeof(float));
    }
    return absl::OkStatus();
  }
  const int64_t s_all = mod.cache->num_states();
  const int64_t h = mod.cache->hidden_size();
  const int64_t k = static_cast<int64_t>(mod.states.size());
  // Gathers in chunks so the scratch buffer stays small.
  constexpr size_t kChunk = 256;
  std::vector<float> scratch;
  std::vector<int64_t> rows;
  for (size_t begin = 0; begin < ids.size(); begin += kChunk) {
    const size_t end = std::min(ids.size(), begin + kChunk);
    rows.clear();
    for (size_t i = begin; i < end; ++i) {
      if (ids[i] < 0 || ids[i] >= num_items_) {
        return absl::InvalidArgumentError(
            absl::StrCat("item id ", ids[i], " outside [0, ", num_items_, ")"));
      }
      rows.push_back(std::max<int64_t>(0, mod.row_of_item[ids[i]]));
    }
    scratch.resize(rows.size() * s_all * h);
    RETURN_IF_ERROR(mod.cache->Gather(rows, scratch.data()));
    for (size_t i = begin; i < end; ++i) {
      float* dst = out + static_cast<int64_t>(i) * k * h;
      if (mod.row_of_item[ids[i]] < 0) {
        std::fill(dst, dst + k * h, 0.0f);
        continue;
      }
      const float* src = scratch.data() + (i - begin) * s_all * h;
      for (int64_t j = 0; j < k; ++j) {
        std::memcpy(dst + j * h, src + mod.states[j] * h, h * sizeof(float));
      }
      if (!mod.mean.empty()) {
        for (int64_t x = 0; x < k * h; ++x) {
          dst[x] = (dst[x] - mod.mean[x]) * mod.inv_std[x];
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace recsys
