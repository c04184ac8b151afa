// Trains and evaluates one recommender (IISAN over cached states, ID-SASRec,
// or popularity) on a leave-one-out split.
//
// Per step: the distinct items of the batch (inputs and targets) go through
// the item tower once; their embeddings are indexed back into the sequences;
// the user encoder gives a query per position; the loss is the in-batch
// softmax over the batch's distinct target items with the log-popularity
// correction and the user's own training items masked out of the negatives.
// Adam with two parameter groups (item tower / user encoder), each with its
// own learning rate. After each epoch: validation HR/NDCG (full ranking);
// the best epoch's weights are kept (and written to checkpoint_path when set);
// training stops after `patience` epochs without improvement of NDCG@10.
//
// Device-agnostic: every tensor is created on options.device; on CUDA the
// forward pass runs under autocast (bf16, or fp16 with loss scaling: see
// TrainerOptions::amp), the loss in fp32.
// LibTorch stays out of this header (pimpl) so binaries and the exporter
// include it cheaply.
//
// Thread-safety: not thread-safe; one Trainer per thread. The InteractionData
// and ItemStateStore must outlive it. With num_threads >= 2 on the CPU it
// runs each step (and evaluation) on a team of threads of its own
// (step_workers.h), joined when it is destroyed.
#ifndef RECSYS_TRAINER_TRAINING_TRAINER_H_
#define RECSYS_TRAINER_TRAINING_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/progress.h"
#include "trainer/data/interactions.h"
#include "trainer/data/item_state_store.h"
#include "trainer/data/sequence_split.h"
#include "model/checkpoint.h"
#include "model/nn/network_config.h"
#include "trainer/training/ranking_metrics.h"

namespace recsys {

struct EpochStats;

// What the progress hook sees: after every training step (finished_epoch
// null), and once after each epoch's validation (finished_epoch set).
struct TrainProgress {
  int epoch = 0;                 // 1-based
  int epochs = 0;                // the configured maximum
  int64_t step = 0;              // 1-based, within the epoch (0 at epoch end)
  int64_t steps = 0;             // steps in this epoch
  double loss = 0;               // this step's loss (epoch end: the mean)
  ProgressSnapshot progress;     // positions done, rate, ETA of the epoch
  const EpochStats* finished_epoch = nullptr;
};

// The most CPU threads one trainer uses (TrainerOptions::num_threads).
inline constexpr int kMaxTrainerThreads = 256;

struct TrainerOptions {
  std::string model = "iisan";    // iisan | sasrec | popularity
  std::string device = "cpu";     // cpu | cuda | cuda:N
  // CUDA mixed precision: auto (bf16 where the GPU has it, compute
  // capability >= 8, else fp16 with a dynamic loss scaler) | bf16 | fp16 |
  // off (fp32). CPU runs are always fp32.
  std::string amp = "auto";
  int epochs = 10;                // upper bound (early stopping)
  int patience = 3;               // epochs without NDCG@10 gain before stopping
  int batch_size = 64;            // training windows per step
  int max_len = 10;               // user-encoder input length (paper: 10)
  int64_t embedding_dim = 64;     // d of items and users
  int64_t bottleneck = 64;        // side-block width
  bool inter_path = true;         // IISAN inter-modal path (two modalities)
  int num_heads = 2;
  int num_layers = 2;
  int64_t ffn_dim = 256;
  double dropout = 0.1;
  double item_tower_lr = 1e-3;    // side network (or ID table) + heads
  double user_encoder_lr = 1e-3;  // transformer
  double weight_decay = 0.0;
  bool popularity_correction = true;  // logit - log p(item)
  uint64_t seed = 42;
  // CPU threads. With shard_steps (the default) and num_threads >= 2 on the
  // CPU, each step is split into num_threads shards run by a team of
  // threads with one intra-op thread each (see "Threads" in
  // trainer/README.md); otherwise num_threads intra-op (OpenMP) threads,
  // process-wide. 0: LibTorch's default.
  int num_threads = 0;  // 0 .. kMaxTrainerThreads
  bool shard_steps = true;
  // Measurement only (train_bench "Ns"): the num_threads shards of a split
  // step run one after another on the calling thread.
  bool serial_shards = false;
  // CPU training runs each user-encoder block and each intra-modal side
  // path as one autograd node with a hand-written backward
  // (model/nn/fused_block.h, fused_intra_path.h); false: LibTorch's ops (the
  // same math; train_bench "Nu" measures the two side by side).
  bool fused_kernels = true;
  int eval_batch_size = 256;      // users per scoring batch ([B, N] scores: 21 MB on Scientific)
  int item_chunk = 2048;          // items per item-tower pass at evaluation
  int max_steps_per_epoch = 0;    // 0: all (for quick smoke runs)
  // CUDA: synchronise the device at each phase boundary so phase_times()
  // is exact (costs a little). CPU phases are exact either way.
  bool time_phases = false;
  std::string checkpoint_path;    // best weights go here when set
  // After every epoch the resumable state (model, optimizer, epoch, RNG,
  // best weights) is written here (trainer/training/epoch_checkpoint.h);
  // Train() continues after the newest epoch it finds. Empty: off.
  std::string resume_dir;
  absl::Duration log_interval = absl::Seconds(10);
  // Called on the training thread (see TrainProgress); a non-OK status stops
  // training and is what Train() returns (e.g. CANCELLED).
  std::function<absl::Status(const TrainProgress&)> on_progress;
};

struct EpochStats {
  int epoch = 0;
  double loss = 0;
  double train_seconds = 0;
  double positions_per_second = 0;
  RankingReport validation;
};

// Wall seconds spent in each phase of the training steps and evaluations
// since the trainer was created (accumulated; callers take differences).
// Measured with a steady clock around each phase; on CUDA the phases are
// synchronised first when TrainerOptions::time_phases is set.
struct PhaseTimes {
  int64_t steps = 0;
  double gather = 0;        // batch indices + item states (cache -> F32, standardised)
  double side_forward = 0;  // item tower forward (side network / ID table)
  double user_encoder = 0;  // sequence assembly + user-encoder forward (split steps: + its backward)
  double loss = 0;          // candidates, mask, in-batch softmax, loss value
  double backward = 0;      // zero_grad + backward
  double optimizer = 0;     // Adam step
  int shards = 1;           // workers a step is split over (1: not split)
  // Sizes summed over the steps (divide by `steps`): distinct items through
  // the item tower (U), user-encoder slots (packed rows x max_len), loss
  // positions and in-batch candidates.
  int64_t items = 0;
  int64_t encoder_slots = 0;
  int64_t loss_positions = 0;
  int64_t candidates = 0;
  // Split steps only: CPU seconds (thread CPU time, not wall) spent in the
  // parallel phases: by the calling thread's shard, by all shards, and
  // summed over the phases of the busiest shard (the critical path with a
  // free core per worker).
  double shard0_cpu = 0;
  double shard_cpu = 0;
  double critical_cpu = 0;
  double evaluation = 0;    // Evaluate() calls (validation / test)
  int64_t evaluations = 0;
};

struct TrainResult {
  std::vector<EpochStats> epochs;
  int best_epoch = 0;             // 1-based; 0 when no epoch ran
  RankingReport best_validation;
  RankingReport test;             // with the best weights
  // The same test ranking, but a target that already occurs in the user's
  // history counts as a miss (protocols that mask the whole history,
  // target included, report this).
  RankingReport test_repeats_as_misses;
  double mean_epoch_seconds = 0;  // training time only
};

class Trainer {
 public:
  // `store` is required for iisan and ignored otherwise. INVALID_ARGUMENT for
  // bad options (named), UNAVAILABLE for a CUDA device on a machine without.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const TrainerOptions& options, const InteractionData* data,
      const ItemStateStore* store);
  ~Trainer();

  // Trains, restores the best epoch's weights, evaluates on test.
  absl::StatusOr<TrainResult> Train();
  // One pass over the training windows; returns the mean loss.
  absl::StatusOr<double> TrainEpoch(int epoch);
  // Full ranking with the history masked (never the target). With
  // `repeated_target_is_miss`, an example whose target is in its history
  // counts as a miss instead.
  absl::StatusOr<RankingReport> Evaluate(const std::vector<EvalExample>& examples,
                                         bool repeated_target_is_miss = false);

  // [num_items * d] item embeddings (row-major), d = embedding_dim().
  absl::StatusOr<std::vector<float>> ItemEmbeddings();
  // User vectors [n * d] for the given histories (the last max_len items).
  absl::StatusOr<std::vector<float>> UserVectors(
      const std::vector<std::vector<int32_t>>& histories);
  int64_t embedding_dim() const;

  // Current weights (CPU float copies) / load weights by name.
  absl::StatusOr<std::vector<NamedTensor>> Parameters() const;
  absl::Status LoadParameters(const std::vector<NamedTensor>& tensors);
  // The options and data shapes as JSON (goes into checkpoints/manifests).
  std::string ConfigJson() const;

  const LeaveOneOutSplit& split() const;
  // Where the time went so far (see PhaseTimes).
  const PhaseTimes& phase_times() const;
  // The networks being trained (not for the popularity baseline).
  const NetworkConfig& network() const;

 private:
  struct State;
  explicit Trainer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_TRAINER_H_
