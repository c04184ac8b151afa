#include "server/model_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "model/model_version.h"

namespace recsys {
namespace {

struct RegistryMetrics {
  Gauge* live_version;
  Gauge* loaded_versions;
  Counter* load_failures;
  Counter* loads;

  static const RegistryMetrics& Get() {
    static const RegistryMetrics m = [] {
      auto& r = MetricsRegistry::Global();
      RegistryMetrics x;
      x.live_version = r.AddGauge("recsys_recommender_live_model_version",
                                  "The model version answering unpinned requests.")
                           ->WithLabels({});
      x.loaded_versions = r.AddGauge("recsys_recommender_loaded_model_versions",
                                     "Model versions loaded in memory.")
                              ->WithLabels({});
      x.load_failures = r.AddCounter("recsys_recommender_model_load_failures_total",
                                     "Model version directories that failed to load.")
                            ->WithLabels({});
      x.loads = r.AddCounter("recsys_recommender_model_loads_total",
                             "Model versions loaded.")
                    ->WithLabels({});
      return x;
    }();
    return m;
  }
};

}  // namespace

ModelRegistry::ModelRegistry(Options options)
    : options_(std::move(options)), snapshot_(std::make_shared<Snapshot>()) {}

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Create(
    Options options) {
  if (options.models_dir.empty()) {
    return absl::InvalidArgumentError("models_dir: required");
  }
  if (options.versions_to_keep < 1) {
    return absl::InvalidArgumentError("versions_to_keep: must be >= 1");
  }
  std::unique_ptr<ModelRegistry> registry(new ModelRegistry(std::move(options)));
  registry->Refresh();
  ModelRegistry* r = registry.get();
  registry->loop_ = std::thread([r] { r->Loop(); });
  return registry;
}

ModelRegistry::~ModelRegistry() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (loop_.joinable()) loop_.join();
}

void ModelRegistry::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      // Wakes early on stop; otherwise a periodic rescan.
      mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.poll_interval);
      if (stop_) return;
    }
    Refresh();
  }
}

void ModelRegistry::Refresh() {
  absl::MutexLock refresh_lock(&refresh_mu_);
  std::shared_ptr<const Snapshot> old;
  {
    absl::MutexLock lock(&mu_);
    old = snapshot_;
  }
  auto next = std::make_shared<Snapshot>();

  // What the sidecar serves, asked before loading: the version it has live
  // stays loaded here even when newer directories fill the newest
  // `versions_to_keep` (versions written but not published, or whose
  // publish failed, or a sidecar rolled back past them). When the sidecar
  // is unreachable, the version live here now stays.
  absl::StatusOr<ServableVersions> sidecar = ServableVersions();
  if (options_.servable) sidecar = options_.servable();
  if (!sidecar.ok()) LOG(WARNING) << "retrieval sidecar check failed: " << sidecar.status();
  const int64_t keep_live =
      !options_.servable ? 0 : sidecar.ok() ? sidecar->live : old->live;

  // The newest `versions_to_keep` complete version directories, and
  // `keep_live`.
  std::vector<int64_t> versions;
  absl::StatusOr<std::vector<int64_t>> listed = ListModelVersions(options_.models_dir);
  if (!listed.ok()) {
    LOG(WARNING) << "models_dir: " << listed.status();
  } else {
    versions = std::move(*listed);
  }
  std::sort(versions.rbegin(), versions.rend());
  int newest = 0;  // of the newest versions_to_keep, loaded so far
  for (int64_t v : versions) {
    const bool live = keep_live > 0 && v == keep_live;
    if (newest >= options_.versions_to_keep && !live) continue;
    auto have = old->models.find(v);
    if (have != old->models.end()) {
      next->models[v] = have->second;
    } else {
      const std::string dir = ModelVersionPath(options_.models_dir, v);
      if (failed_.count(dir)) continue;
      absl::StatusOr<std::unique_ptr<ServingModel>> model = ServingModel::Load(dir);
      if (!model.ok()) {
        LOG(ERROR) << "not serving model version " << v << ": " << model.status();
        failed_[dir] = std::string(model.status().message());
        RegistryMetrics::Get().load_failures->Increment();
        continue;
      }
      LOG(INFO) << "loaded model version " << v << " (" << (*model)->info().model_kind
                << ", " << (*model)->info().num_items << " items, d="
                << (*model)->info().embedding_dim << ")";
      RegistryMetrics::Get().loads->Increment();
      next->models[v] = std::move(*model);
    }
    if (newest < options_.versions_to_keep) ++newest;
  }

  // Which loaded versions the sidecar can serve, and which is live.
  int64_t sidecar_live = 0;
  if (!options_.servable) {
    for (const auto& [v, unused] : next->models) next->servable.insert(v);
  } else if (sidecar.ok()) {
    for (const auto& [v, unused] : next->models) {
      if (sidecar->loaded.count(v)) next->servable.insert(v);
    }
    sidecar_live = sidecar->live;
  } else {
    // The sidecar is unreachable: keep answering with what was servable.
    for (int64_t v : old->servable) {
      if (next->models.count(v)) next->servable.insert(v);
    }
    sidecar_live = old->live;
  }
  if (next->servable.count(sidecar_live)) {
    next->live = sidecar_live;
  } else if (!next->servable.empty()) {
    next->live = *next->servable.rbegin();
  }

  const bool changed = next->live != old->live;
  if (changed) {
    LOG(INFO) << "live model version: " << old->live << " -> " << next->live;
  }
  RegistryMetrics::Get().live_version->Set(static_cast<double>(next->live));
  RegistryMetrics::Get().loaded_versions->Set(static_cast<double>(next->models.size()));
  const int64_t live = next->live;
  {
    absl::MutexLock lock(&mu_);
    snapshot_ = std::move(next);
  }
  // `old` (and any version it alone held) is released here, after the new
  // snapshot is visible; requests still holding a version keep it alive.
  if (options_.on_change) options_.on_change(live);
}

absl::StatusOr<std::shared_ptr<const ServingModel>> ModelRegistry::Get(
    int64_t version) const {
  std::shared_ptr<const Snapshot> s;
  {
    absl::MutexLock lock(&mu_);
    s = snapshot_;
  }
  if (version == 0) {
    if (s->live == 0) {
      return absl::UnavailableError("no model version is live yet");
    }
    return s->models.at(s->live);
  }
  auto it = s->models.find(version);
  if (it == s->models.end() || !s->servable.count(version)) {
    std::string have;
    for (int64_t v : s->servable) absl::StrAppend(&have, have.empty() ? "" : ", ", v);
    return absl::NotFoundError(absl::StrCat(
        "model.version: ", version, " is not loaded; serving [", have, "]"));
  }
  return it->second;
}

std::vector<ModelRegistry::Entry> ModelRegistry::List() const {
  std::shared_ptr<const Snapshot> s;
  {
    absl::MutexLock lock(&mu_);
    s = snapshot_;
  }
  std::vector<Entry> out;
  for (const auto& [v, model] : s->models) {
    out.push_back({model, s->servable.count(v) > 0, v == s->live});
  }
  return out;
}

int64_t ModelRegistry::live_version() const {
  absl::MutexLock lock(&mu_);
  return snapshot_->live;
}

}  // namespace recsys
