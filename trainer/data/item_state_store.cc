#include "trainer/data/item_state_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
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
    m.row_of_item.resize(item_keys.size());
    int64_t missing = 0;
    for (size_t i = 0; i < item_keys.size(); ++i) {
      m.row_of_item[i] = m.cache->RowOf(item_keys[i]);
      if (m.row_of_item[i] < 0) {
        if (!options.allow_missing_items) {
          return absl::NotFoundError(absl::StrCat(
              path, ": item \"", item_keys[i], "\" has no cached states"));
        }
        ++missing;
      }
    }
    store->modalities_.push_back(std::move(m));
  }
  std::stable_sort(store->modalities_.begin(), store->modalities_.end(),
                   [](const Modality& a, const Modality& b) {
                     return a.name == "text" && b.name != "text";
                   });
  if (options.standardize) {
    for (int m = 0; m < store->num_modalities(); ++m) {
      RETURN_IF_ERROR(store->ComputeStatistics(m));
    }
  }
  return store;
}

absl::Status ItemStateStore::ComputeStatistics(int m) {
  Modality& mod = modalities_[m];
  const int64_t width = num_blocks(m) * hidden_size(m);
  std::vector<double> sum(width, 0.0), sum_sq(width, 0.0);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < num_items_; ++i) {
    if (mod.row_of_item[i] >= 0) ids.push_back(i);
  }
  if (ids.empty()) return absl::OkStatus();
  constexpr size_t kChunk = 1024;
  std::vector<float> buf;
  for (size_t begin = 0; begin < ids.size(); begin += kChunk) {
    const std::vector<int64_t> chunk(ids.begin() + begin,
                                     ids.begin() + std::min(ids.size(), begin + kChunk));
    buf.resize(chunk.size() * width);
    RETURN_IF_ERROR(Gather(m, chunk, buf.data()));  // statistics not set yet: raw
    for (size_t r = 0; r < chunk.size(); ++r) {
      const float* x = buf.data() + r * width;
      for (int64_t j = 0; j < width; ++j) {
        sum[j] += x[j];
        sum_sq[j] += static_cast<double>(x[j]) * x[j];
      }
    }
  }
  const double n = static_cast<double>(ids.size());
  mod.mean.resize(width);
  mod.inv_std.resize(width);
  for (int64_t j = 0; j < width; ++j) {
    const double mean = sum[j] / n;
    const double var = std::max(0.0, sum_sq[j] / n - mean * mean);
    const double sd = std::sqrt(var);
    mod.mean[j] = static_cast<float>(mean);
    // Constant over the catalog (up to F16 rounding): carries no signal.
    mod.inv_std[j] = sd > 1e-4 * (std::fabs(mean) + 1e-3) ? static_cast<float>(1.0 / sd) : 0.0f;
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
