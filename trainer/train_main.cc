// Trains a recommender on cached states, evaluates it, prints one JSON line of
// metrics (with timing and peak memory) and exports a model version:
//   train --interactions=users.tsv --text_cache=text.safetensors
//         [--image_cache=...] --model=iisan --out_dir=/tmp/models
// Without --interactions it generates the synthetic demo catalog under
// <out_dir>/demo-data and trains on both of its modalities.
#include <sys/resource.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "trainer/data/demo_data.h"
#include "trainer/data/interactions.h"
#include "trainer/data/item_state_store.h"
#include "trainer/training/model_export.h"
#include "trainer/training/trainer.h"

ABSL_FLAG(std::string, interactions, "",
          "users.tsv (user<TAB>item item ...) or user,item,timestamp CSV; empty: demo data");
ABSL_FLAG(std::string, text_cache, "", "text hidden-state cache (safetensors)");
ABSL_FLAG(std::string, image_cache, "", "image hidden-state cache (safetensors)");
ABSL_FLAG(std::string, model, "iisan", "iisan | sasrec | popularity");
ABSL_FLAG(std::string, device, "cpu", "cpu | cuda | cuda:N");
ABSL_FLAG(int, epochs, 10, "maximum epochs");
ABSL_FLAG(int, patience, 3, "early-stopping patience (epochs)");
ABSL_FLAG(int, batch_size, 64, "training windows per step");
ABSL_FLAG(int, max_len, 10, "user-encoder input length");
ABSL_FLAG(std::string, layer_mode, "every_second", "every_second | group | all");
ABSL_FLAG(int, num_groups, 6, "groups for layer_mode=group");
ABSL_FLAG(int, embedding_dim, 64, "item / user embedding width");
ABSL_FLAG(int, bottleneck, 64, "side-block bottleneck width");
ABSL_FLAG(int, ffn_dim, 256, "user-encoder feed-forward width");
ABSL_FLAG(int, num_heads, 2, "user-encoder attention heads");
ABSL_FLAG(int, num_layers, 2, "user-encoder transformer blocks");
ABSL_FLAG(bool, inter_path, true, "IISAN inter-modal path (two modalities)");
ABSL_FLAG(double, item_tower_lr, 1e-3, "learning rate of the side network / ID table");
ABSL_FLAG(double, user_encoder_lr, 1e-3, "learning rate of the user encoder");
ABSL_FLAG(double, weight_decay, 0.0, "Adam weight decay");
ABSL_FLAG(double, dropout, 0.1, "user-encoder dropout");
ABSL_FLAG(uint64_t, seed, 42, "random seed");
// On a small shared CPU, one intra-op thread is much faster than several:
// OpenMP workers spin while other processes hold the cores (measured ~10x on
// the 2-core build machine). Raise it on a dedicated machine.
ABSL_FLAG(int, threads, 1, "intra-op threads (0: LibTorch default)");
ABSL_FLAG(int, max_steps_per_epoch, 0, "cap on steps per epoch (0: all)");
ABSL_FLAG(bool, standardize_states, true,
          "standardize cached states per dimension over the catalog (see "
          "ItemStateStore::Options::standardize; helps seeded stand-in backbones)");
ABSL_FLAG(bool, allow_missing_items, false, "zero states for items absent from a cache");
ABSL_FLAG(std::string, out_dir, "", "where model versions are written (empty: no export)");
ABSL_FLAG(int64_t, version, 0,
          "model version number, also the retrieval collection version it is "
          "published as (0: one more than the newest version in --out_dir)");
ABSL_FLAG(std::string, metrics_out, "", "also write the JSON metrics line here");

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

absl::Status Run() {
  const absl::Time start = absl::Now();
  std::string interactions = absl::GetFlag(FLAGS_interactions);
  std::string text_cache = absl::GetFlag(FLAGS_text_cache);
  std::string image_cache = absl::GetFlag(FLAGS_image_cache);
  const std::string out_dir = absl::GetFlag(FLAGS_out_dir);
  if (interactions.empty()) {
    const std::string demo = JoinPath(out_dir.empty() ? "/tmp" : out_dir, "demo-data");
    LOG(INFO) << "no --interactions: generating the demo catalog in " << demo;
    DemoDataOptions d;
    RETURN_IF_ERROR(WriteDemoData(GenerateDemoData(d), d, demo));
    interactions = JoinPath(demo, "users.tsv");
    text_cache = JoinPath(demo, "text_states.safetensors");
    image_cache = JoinPath(demo, "image_states.safetensors");
  }
  ASSIGN_OR_RETURN(InteractionData data, LoadInteractions(interactions));
  LOG(INFO) << "interactions: " << data.num_users() << " users, " << data.num_items()
            << " items, " << data.num_interactions() << " interactions";

  TrainerOptions o;
  o.model = absl::GetFlag(FLAGS_model);
  o.device = absl::GetFlag(FLAGS_device);
  o.epochs = absl::GetFlag(FLAGS_epochs);
  o.patience = absl::GetFlag(FLAGS_patience);
  o.batch_size = absl::GetFlag(FLAGS_batch_size);
  o.max_len = absl::GetFlag(FLAGS_max_len);
  o.embedding_dim = absl::GetFlag(FLAGS_embedding_dim);
  o.bottleneck = absl::GetFlag(FLAGS_bottleneck);
  o.ffn_dim = absl::GetFlag(FLAGS_ffn_dim);
  o.num_heads = absl::GetFlag(FLAGS_num_heads);
  o.num_layers = absl::GetFlag(FLAGS_num_layers);
  o.inter_path = absl::GetFlag(FLAGS_inter_path);
  o.item_tower_lr = absl::GetFlag(FLAGS_item_tower_lr);
  o.user_encoder_lr = absl::GetFlag(FLAGS_user_encoder_lr);
  o.weight_decay = absl::GetFlag(FLAGS_weight_decay);
  o.dropout = absl::GetFlag(FLAGS_dropout);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.num_threads = absl::GetFlag(FLAGS_threads);
  o.max_steps_per_epoch = absl::GetFlag(FLAGS_max_steps_per_epoch);

  std::unique_ptr<ItemStateStore> store;
  if (o.model == "iisan") {
    ItemStateStore::Options so;
    if (!text_cache.empty()) so.cache_paths.push_back(text_cache);
    if (!image_cache.empty()) so.cache_paths.push_back(image_cache);
    ASSIGN_OR_RETURN(so.layers.mode, ParseLayerMode(absl::GetFlag(FLAGS_layer_mode)));
    so.layers.num_groups = absl::GetFlag(FLAGS_num_groups);
    so.allow_missing_items = absl::GetFlag(FLAGS_allow_missing_items);
    so.standardize = absl::GetFlag(FLAGS_standardize_states);
    ASSIGN_OR_RETURN(store, ItemStateStore::Create(so, data.item_keys));
    for (int m = 0; m < store->num_modalities(); ++m) {
      LOG(INFO) << "modality " << store->modality(m) << ": " << store->info(m).backbone
                << (store->info(m).standin ? " (STAND-IN)" : "") << ", "
                << store->num_blocks(m) << " blocks of width " << store->hidden_size(m);
    }
  }
  ASSIGN_OR_RETURN(auto trainer, Trainer::Create(o, &data, store.get()));
  ASSIGN_OR_RETURN(TrainResult r, trainer->Train());

  std::string epochs = "[";
  for (const EpochStats& e : r.epochs) {
    absl::StrAppendFormat(&epochs,
                          "%s{\"epoch\":%d,\"loss\":%.5f,\"train_seconds\":%.2f,"
                          "\"positions_per_second\":%.1f,\"validation\":%s}",
                          e.epoch == 1 ? "" : ",", e.epoch, e.loss, e.train_seconds,
                          e.positions_per_second, e.validation.ToJson());
  }
  epochs += "]";
  const std::string metrics = absl::StrCat(
      "{\"validation\":", r.best_validation.ToJson(), ",\"test\":", r.test.ToJson(),
      ",\"test_repeats_as_misses\":", r.test_repeats_as_misses.ToJson(), "}");

  std::string version_dir;
  if (!out_dir.empty() && o.model != "popularity") {
    ModelVersion v;
    int64_t number = absl::GetFlag(FLAGS_version);
    if (number == 0) {
      ASSIGN_OR_RETURN(number, NextModelVersion(out_dir));
    } else if (number < 0) {
      return absl::InvalidArgumentError("--version: must be >= 0");
    }
    v.version = absl::StrCat(number);
    v.model = o.model;
    nlohmann::json config = nlohmann::json::parse(trainer->ConfigJson());
    // Needed to embed new items the same way (e.g. an embedding refresh).
    config["standardize_states"] = absl::GetFlag(FLAGS_standardize_states);
    v.config_json = config.dump();
    v.data_fingerprint = Fingerprint(data);
    v.metrics_json = metrics;
    v.max_len = o.max_len;
    v.item_keys = data.item_keys;
    v.embedding_dim = trainer->embedding_dim();
    ASSIGN_OR_RETURN(v.item_embeddings, trainer->ItemEmbeddings());
    ASSIGN_OR_RETURN(v.weights, trainer->Parameters());
    // The fixed input standardization is part of the model: embedding new
    // items later must apply the same statistics.
    for (int m = 0; store != nullptr && m < store->num_modalities(); ++m) {
      if (store->mean(m).empty()) continue;
      const std::vector<int64_t> shape = {store->num_blocks(m), store->hidden_size(m)};
      const std::string prefix = absl::StrCat("state_standardization.", store->modality(m));
      v.weights.push_back({prefix + ".mean", shape, store->mean(m)});
      v.weights.push_back({prefix + ".inv_std", shape, store->inv_std(m)});
    }
    ASSIGN_OR_RETURN(version_dir, ExportModelVersion(out_dir, v));
    LOG(INFO) << "exported " << version_dir;
  }
  const std::string line = absl::StrFormat(
      "{\"model\":\"%s\",\"users\":%d,\"items\":%d,\"epochs_run\":%d,\"best_epoch\":%d,"
      "\"mean_epoch_seconds\":%.2f,\"total_seconds\":%.1f,%s,\"best_validation\":%s,"
      "\"test\":%s,\"test_repeats_as_misses\":%s,\"epochs\":%s,\"version_dir\":\"%s\"}",
      o.model, data.num_users(), data.num_items(), static_cast<int>(r.epochs.size()),
      r.best_epoch, r.mean_epoch_seconds, absl::ToDoubleSeconds(absl::Now() - start),
      MemoryJson(), r.best_validation.ToJson(), r.test.ToJson(),
      r.test_repeats_as_misses.ToJson(), epochs, version_dir);
  std::cout << line << std::endl;
  if (!absl::GetFlag(FLAGS_metrics_out).empty()) {
    RETURN_IF_ERROR(WriteFileAtomically(absl::GetFlag(FLAGS_metrics_out), line + "\n"));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace recsys

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(argc, argv, "Trains a recommender on cached item states, evaluates it, exports a model version.\n  train --interactions=users.tsv --text_cache=text.safetensors --out_dir=models");
  absl::Status s = recsys::Run();
  if (!s.ok()) {
    std::cerr << "train: " << s << "\n";
    return 1;
  }
  return 0;
}
