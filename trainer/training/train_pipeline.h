// The training pipeline as one call: load the interactions and the cached
// item states, train and evaluate, and write the model version (through
// model/model_version.h). The `train` command and the Trainer service both
// run it; neither carries any step of it.
//
//   TrainPipelineOptions o;
//   o.interactions = "users.tsv"; o.text_cache = "text.safetensors";
//   o.models_dir = "run/models";
//   o.trainer.on_progress = [](const TrainProgress& p) { ...; return absl::OkStatus(); };
//   ASSIGN_OR_RETURN(TrainPipelineResult r, RunTrainPipeline(o));
//
// Nothing is exported unless training finished and its metrics are finite:
// a failed, cancelled (on_progress returned non-OK) or degenerate run leaves
// no version directory.
//
// Thread-safety: one call per thread; LibTorch's thread settings are
// process-wide (TrainerOptions::num_threads).
#ifndef RECSYS_TRAINER_TRAINING_TRAIN_PIPELINE_H_
#define RECSYS_TRAINER_TRAINING_TRAIN_PIPELINE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "trainer/training/trainer.h"

namespace recsys {

struct TrainPipelineOptions {
  // users.tsv (user<TAB>item item ...) or user,item,timestamp CSV. Empty:
  // the synthetic demo catalog is generated under `demo_dir` and both of its
  // modalities are used.
  std::string interactions;
  std::string demo_dir = "/tmp/demo-data";
  std::string text_cache;   // hidden-state caches (iisan)
  std::string image_cache;
  std::string layer_mode = "every_second";  // every_second | group | all
  int num_groups = 6;                        // layer_mode = group
  bool standardize_states = true;            // see ItemStateStore::Options
  bool allow_missing_items = false;          // zero states for uncached items
  TrainerOptions trainer;
  std::string models_dir;  // where the version is written; empty: no export
  int64_t version = 0;     // 0: one more than the newest in models_dir
};

struct TrainPipelineResult {
  int64_t num_users = 0;
  int64_t num_items = 0;
  TrainResult train;
  // {"validation": ..., "test": ..., "test_repeats_as_misses": ...}
  std::string metrics_json;
  int64_t version = 0;      // 0 when nothing was exported
  std::string version_dir;  // empty when nothing was exported
  double total_seconds = 0;
  std::string model;        // iisan | sasrec | popularity

  // One JSON object on one line: the run's figures, per-epoch stats, peak
  // memory of the process, and the version directory.
  std::string ToJsonLine() const;
};

absl::StatusOr<TrainPipelineResult> RunTrainPipeline(const TrainPipelineOptions& options);

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_TRAIN_PIPELINE_H_
