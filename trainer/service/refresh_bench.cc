// The incremental embedding refresh against one training epoch, side by
// side in one run on the same data and machine: trains an IISAN version on a
// catalog with the hashed bag-of-words stand-in text cache, then refreshes it
// after adding `new_fraction` new items and retitling `changed_fraction`
// (and removing `removed_fraction`), and prints one JSON line:
//   {"items_before", "items_after", "users", "epoch_seconds" (training only, the fastest epoch),
//    "refresh_seconds" (the whole RunEmbeddingRefresh: plan, encode, cache
//    write, embed, version write), "encode_seconds", "embed_seconds",
//    "refresh_over_epoch", "reused", "recomputed", "removed"}
//
//   bazel run //trainer/service:refresh_bench -- [--num_items=2000 --num_users=4000]
//   bazel run //trainer/service:refresh_bench -- --items=$D/items.tsv --interactions=$D/users.tsv
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "model/items_table.h"
#include "nlohmann/json.hpp"
#include "trainer/data/demo_data.h"
#include "trainer/data/standin_text_cache.h"
#include "trainer/service/embedding_refresh.h"
#include "trainer/training/train_pipeline.h"

ABSL_FLAG(std::string, work_dir, "/tmp/refresh_bench", "scratch directory (emptied)");
ABSL_FLAG(std::string, items, "", "key<TAB>title catalog; empty: the synthetic demo catalog");
ABSL_FLAG(std::string, interactions, "", "users.tsv of --items");
ABSL_FLAG(int, num_items, 2000, "demo catalog size");
ABSL_FLAG(int, num_users, 4000, "demo users");
ABSL_FLAG(int, num_states, 13, "stand-in text states");
ABSL_FLAG(int, hidden_size, 768, "stand-in text width");
ABSL_FLAG(int, epochs, 2, "training epochs (the fastest is reported)");
ABSL_FLAG(int, threads, 1, "LibTorch threads");
ABSL_FLAG(double, new_fraction, 0.10, "new items, as a fraction of the catalog");
ABSL_FLAG(double, changed_fraction, 0.05, "retitled items");
ABSL_FLAG(double, removed_fraction, 0.03, "removed items");

namespace recsys {
namespace {

absl::Status Run() {
  const std::string dir = absl::GetFlag(FLAGS_work_dir);
  RETURN_IF_ERROR(RemoveRecursively(dir));
  RETURN_IF_ERROR(CreateDirectories(dir));
  std::string items = absl::GetFlag(FLAGS_items);
  std::string interactions = absl::GetFlag(FLAGS_interactions);
  if (items.empty()) {
    DemoDataOptions d;
    d.num_items = absl::GetFlag(FLAGS_num_items);
    d.num_users = absl::GetFlag(FLAGS_num_users);
    d.text_states = d.image_states = 2;
    d.text_hidden = d.image_hidden = 4;
    RETURN_IF_ERROR(WriteDemoData(GenerateDemoData(d), d, dir));
    items = JoinPath(dir, "items.tsv");
    interactions = JoinPath(dir, "users.tsv");
  }
  StandinTextOptions so;
  so.num_states = absl::GetFlag(FLAGS_num_states);
  so.hidden_size = absl::GetFlag(FLAGS_hidden_size);
  const std::string cache = JoinPath(dir, "text.st");
  RETURN_IF_ERROR(WriteStandinTextCache(items, cache, so));

  TrainPipelineOptions p;
  p.interactions = interactions;
  p.text_cache = cache;
  p.models_dir = JoinPath(dir, "models");
  p.version = 1;
  p.trainer.epochs = absl::GetFlag(FLAGS_epochs);
  p.trainer.patience = p.trainer.epochs;
  p.trainer.num_threads = absl::GetFlag(FLAGS_threads);
  ASSIGN_OR_RETURN(TrainPipelineResult trained, RunTrainPipeline(p));
  double epoch_seconds = 1e30;
  for (const EpochStats& e : trained.train.epochs) epoch_seconds = std::min(epoch_seconds, e.train_seconds);

  ASSIGN_OR_RETURN(std::vector<ItemTableRow> rows, ReadItemTable(items));
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t every_changed = std::max<int64_t>(1, static_cast<int64_t>(1 / absl::GetFlag(FLAGS_changed_fraction)));
  const int64_t every_removed = std::max<int64_t>(1, static_cast<int64_t>(1 / absl::GetFlag(FLAGS_removed_fraction)));
  std::string updated;
  for (int64_t i = 0; i < n; ++i) {
    if (i % every_removed == every_removed / 2) continue;
    absl::StrAppend(&updated, rows[i].key, "\t", rows[i].value,
                    i % every_changed == 1 ? " (new edition)" : "", "\n");
  }
  const int64_t added = static_cast<int64_t>(n * absl::GetFlag(FLAGS_new_fraction));
  for (int64_t i = 0; i < added; ++i) {
    absl::StrAppend(&updated, "BENCHNEW", i, "\trefurbished ", rows[(7 * i) % n].value, " mk", i, "\n");
  }
  const std::string updated_path = JoinPath(dir, "updated.tsv");
  RETURN_IF_ERROR(WriteFileAtomically(updated_path, updated));

  EmbeddingRefreshOptions o;
  o.models_dir = p.models_dir;
  o.parent_version = 1;
  o.version = 2;
  o.items_table = updated_path;
  o.text_cache = cache;
  o.cache_out = JoinPath(dir, "refreshed.st");
  o.num_threads = absl::GetFlag(FLAGS_threads);
  ASSIGN_OR_RETURN(EmbeddingRefreshResult r, RunEmbeddingRefresh(o));
  nlohmann::json j = {{"items_before", n},
                      {"items_after", r.items},
                      {"users", trained.num_users},
                      {"state_shape", absl::StrCat(so.num_states, "x", so.hidden_size)},
                      {"epoch_seconds", epoch_seconds},
                      {"refresh_seconds", r.seconds},
                      {"encode_seconds", r.encode_seconds},
                      {"embed_seconds", r.embed_seconds},
                      {"refresh_over_epoch", r.seconds / epoch_seconds},
                      {"reused", r.reused},
                      {"recomputed", r.recomputed},
                      {"removed", r.removed}};
  std::cout << j.dump() << std::endl;
  return absl::OkStatus();
}

}  // namespace
}  // namespace recsys

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(
      argc, argv,
      "The embedding refresh against one training epoch, side by side (one JSON line).\n"
      "  refresh_bench [--num_items=2000 --num_users=4000] [--items=items.tsv --interactions=users.tsv]");
  absl::Status s = recsys::Run();
  if (!s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  return 0;
}
