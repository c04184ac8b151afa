// Trains a recommender on cached states, evaluates it, prints one JSON line of
// metrics (with timing and peak memory) and exports a model version:
//   train --interactions=users.tsv --text_cache=text.safetensors
//         [--image_cache=...] --model=iisan --out_dir=/tmp/models
// Without --interactions it generates the synthetic demo catalog under
// <out_dir>/demo-data and trains on both of its modalities.
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/status_macros.h"
#include "trainer/training/train_pipeline.h"

ABSL_FLAG(std::string, interactions, "",
          "users.tsv (user<TAB>item item ...) or user,item,timestamp CSV; empty: demo data");
ABSL_FLAG(std::string, text_cache, "", "text hidden-state cache (safetensors)");
ABSL_FLAG(std::string, image_cache, "", "image hidden-state cache (safetensors)");
ABSL_FLAG(std::string, model, "iisan", "iisan | sasrec | popularity");
ABSL_FLAG(std::string, device, "cpu", "cpu | cuda | cuda:N");
ABSL_FLAG(std::string, amp, "auto",
          "CUDA mixed precision: auto (bf16 on compute capability >= 8, else fp16 with "
          "dynamic loss scaling) | bf16 | fp16 | off");
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
// 1 by default: on this 2-core build machine the split step at 2 threads
// measured 1.17-1.52x one thread when the second core was idle, but
// 0.7-1.1x while other processes held it. Raise it on a dedicated machine.
ABSL_FLAG(int, threads, 1,
          "CPU threads: >= 2 splits each step over that many workers (1 intra-op thread each; "
          "trainer/README.md \"Threads\"); 0: LibTorch default");
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

TrainPipelineOptions OptionsFromFlags() {
  TrainPipelineOptions p;
  p.interactions = absl::GetFlag(FLAGS_interactions);
  p.text_cache = absl::GetFlag(FLAGS_text_cache);
  p.image_cache = absl::GetFlag(FLAGS_image_cache);
  p.models_dir = absl::GetFlag(FLAGS_out_dir);
  p.demo_dir = JoinPath(p.models_dir.empty() ? "/tmp" : p.models_dir, "demo-data");
  p.version = absl::GetFlag(FLAGS_version);
  p.layer_mode = absl::GetFlag(FLAGS_layer_mode);
  p.num_groups = absl::GetFlag(FLAGS_num_groups);
  p.standardize_states = absl::GetFlag(FLAGS_standardize_states);
  p.allow_missing_items = absl::GetFlag(FLAGS_allow_missing_items);
  TrainerOptions& o = p.trainer;
  o.model = absl::GetFlag(FLAGS_model);
  o.device = absl::GetFlag(FLAGS_device);
  o.amp = absl::GetFlag(FLAGS_amp);
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
  return p;
}

absl::Status Run() {
  ASSIGN_OR_RETURN(TrainPipelineResult r, RunTrainPipeline(OptionsFromFlags()));
  const std::string line = r.ToJsonLine();
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
