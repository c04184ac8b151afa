#include "trainer/training/train_pipeline.h"

#include <sys/resource.h>

#include <cmath>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "model/model_version.h"
#include "nlohmann/json.hpp"
#include "trainer/data/demo_data.h"
#include "trainer/data/interactions.h"
#include "trainer/data/item_state_store.h"

namespace recsys {
namespace {

// Peak resident set (ru_maxrss, includes touched pages of mapped caches) and
// the current anonymous / file-backed resident sizes from /proc.
std::string MemoryJson() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  long anon = -1, file = -1;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("RssAnon:", 0) == 0) anon = std::stol(line.substr(8));
    if (line.rfind("RssFile:", 0) == 0) file = std::stol(line.substr(8));
  }
  return absl::StrFormat(
      "\"peak_rss_mb\":%.1f,\"rss_anon_mb_at_end\":%.1f,\"rss_file_mb_at_end\":%.1f",
      ru.ru_maxrss / 1024.0, anon / 1024.0, file / 1024.0);
}

absl::StatusOr<std::unique_ptr<ItemStateStore>> OpenStore(const TrainPipelineOptions& o,
                                                          const std::string& text_cache,
                                                          const std::string& image_cache,
                                                          const InteractionData& data) {
  ItemStateStore::Options so;
  if (!text_cache.empty()) so.cache_paths.push_back(text_cache);
  if (!image_cache.empty()) so.cache_paths.push_back(image_cache);
  ASSIGN_OR_RETURN(so.layers.mode, ParseLayerMode(o.layer_mode));
  so.layers.num_groups = o.num_groups;
  so.allow_missing_items = o.allow_missing_items;
  so.standardize = o.standardize_states;
  ASSIGN_OR_RETURN(std::unique_ptr<ItemStateStore> store,
                   ItemStateStore::Create(so, data.item_keys));
  for (int m = 0; m < store->num_modalities(); ++m) {
    LOG(INFO) << "modality " << store->modality(m) << ": " << store->info(m).backbone
              << (store->info(m).standin ? " (STAND-IN)" : "") << ", "
              << store->num_blocks(m) << " blocks of width " << store->hidden_size(m);
  }
  return store;
}

// The fixed input standardisation is part of the model: embedding new items
// later must apply the same statistics.
std::vector<StateStandardization> StandardizationOf(const ItemStateStore* store) {
  std::vector<StateStandardization> out;
  for (int m = 0; store != nullptr && m < store->num_modalities(); ++m) {
    if (store->mean(m).empty()) continue;
    out.push_back({store->modality(m),
                   {store->num_blocks(m), store->hidden_size(m)},
                   store->mean(m),
                   store->inv_std(m)});
  }
  return out;
}

absl::StatusOr<std::string> Export(const TrainPipelineOptions& o, Trainer* trainer,
                                   const InteractionData& data,
                                   const ItemStateStore* store, const std::string& metrics,
                                   int64_t* version) {
  int64_t number = o.version;
  if (number == 0) {
    ASSIGN_OR_RETURN(number, NextModelVersion(o.models_dir));
  } else if (number < 0) {
    return absl::InvalidArgumentError(absl::StrCat("version: must be >= 0, got ", number));
  }
  ModelVersionContents v;
  v.manifest.version = number;
  v.manifest.kind = "train";
  v.manifest.network = trainer->network();
  // What an embedding refresh must encode new items with.
  for (ModalityConfig& m : v.manifest.network.modalities) {
    const int at = store == nullptr ? -1 : store->IndexOf(m.modality);
    if (at >= 0) m.backbone_fingerprint = store->info(at).backbone_fingerprint;
  }
  v.manifest.config_json = trainer->ConfigJson();
  v.manifest.data_fingerprint = Fingerprint(data);
  v.manifest.metrics_json = metrics;
  v.items.keys = data.item_keys;
  v.items.dim = trainer->embedding_dim();
  ASSIGN_OR_RETURN(v.items.values, trainer->ItemEmbeddings());
  for (float x : v.items.values) {
    if (!std::isfinite(x)) {
      return absl::FailedPreconditionError(
          "training produced non-finite item embeddings; nothing was exported");
    }
  }
  ASSIGN_OR_RETURN(v.weights, trainer->Parameters());
  v.standardization = StandardizationOf(store);
  // Cold-start popularity: each item's count in the training split (dense
  // id order, the order of v.items.keys).
  const std::vector<int64_t>& counts = trainer->split().train_item_counts;
  if (counts.size() == v.items.keys.size()) {
    v.item_popularity.assign(counts.begin(), counts.end());
  }
  ASSIGN_OR_RETURN(std::string dir, WriteModelVersion(o.models_dir, v));
  *version = number;
  return dir;
}

}  // namespace

absl::StatusOr<TrainPipelineResult> RunTrainPipeline(const TrainPipelineOptions& o) {
  const absl::Time start = absl::Now();
  std::string interactions = o.interactions;
  std::string text_cache = o.text_cache;
  std::string image_cache = o.image_cache;
  if (interactions.empty()) {
    LOG(INFO) << "no interactions given: generating the demo catalog in " << o.demo_dir;
    DemoDataOptions d;
    RETURN_IF_ERROR(WriteDemoData(GenerateDemoData(d), d, o.demo_dir));
    interactions = JoinPath(o.demo_dir, "users.tsv");
    text_cache = JoinPath(o.demo_dir, "text_states.safetensors");
    image_cache = JoinPath(o.demo_dir, "image_states.safetensors");
  }
  ASSIGN_OR_RETURN(InteractionData data, LoadInteractions(interactions));
  LOG(INFO) << "interactions: " << data.num_users() << " users, " << data.num_items()
            << " items, " << data.num_interactions() << " interactions";

  std::unique_ptr<ItemStateStore> store;
  if (o.trainer.model == "iisan") {
    ASSIGN_OR_RETURN(store, OpenStore(o, text_cache, image_cache, data));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                   Trainer::Create(o.trainer, &data, store.get()));
  TrainPipelineResult r;
  r.model = o.trainer.model;
  r.num_users = data.num_users();
  r.num_items = data.num_items();
  ASSIGN_OR_RETURN(r.train, trainer->Train());
  r.metrics_json = absl::StrCat("{\"validation\":", r.train.best_validation.ToJson(),
                                ",\"test\":", r.train.test.ToJson(),
                                ",\"test_repeats_as_misses\":",
                                r.train.test_repeats_as_misses.ToJson(), "}");
  if (!o.models_dir.empty() && o.trainer.model != "popularity") {
    ASSIGN_OR_RETURN(r.version_dir, Export(o, trainer.get(), data, store.get(),
                                           r.metrics_json, &r.version));
    LOG(INFO) << "exported " << r.version_dir;
  }
  r.total_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return r;
}

std::string TrainPipelineResult::ToJsonLine() const {
  std::string epochs = "[";
  for (const EpochStats& e : train.epochs) {
    absl::StrAppendFormat(&epochs,
                          "%s{\"epoch\":%d,\"loss\":%s,\"train_seconds\":%.2f,"
                          "\"positions_per_second\":%.1f,\"validation\":%s}",
                          e.epoch == 1 ? "" : ",",
                          e.epoch, std::isfinite(e.loss) ? absl::StrFormat("%.5f", e.loss) : "null",
                          e.train_seconds, e.positions_per_second, e.validation.ToJson());
  }
  epochs += "]";
  return absl::StrFormat(
      "{\"model\":\"%s\",\"users\":%d,\"items\":%d,\"epochs_run\":%d,\"best_epoch\":%d,"
      "\"mean_epoch_seconds\":%.2f,\"total_seconds\":%.1f,%s,\"best_validation\":%s,"
      "\"test\":%s,\"test_repeats_as_misses\":%s,\"epochs\":%s,\"version\":%d,"
      "\"version_dir\":%s}",
      model, num_users, num_items, static_cast<int>(train.epochs.size()), train.best_epoch,
      train.mean_epoch_seconds, total_seconds, MemoryJson(), train.best_validation.ToJson(),
      train.test.ToJson(), train.test_repeats_as_misses.ToJson(), epochs, version,
      nlohmann::json(version_dir).dump());
}

}  // namespace recsys
