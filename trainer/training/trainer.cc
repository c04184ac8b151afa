#include "trainer/training/trainer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <tuple>
#include <utility>

#include <ATen/autocast_mode.h>
#ifdef RECSYS_WITH_CUDA_RUNTIME
#include <cuda_runtime_api.h>
#endif
#include <torch/torch.h>
#include <torch/version.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/progress.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "model/nn/grad_sinks.h"
#include "model/nn/recommender.h"
#include "trainer/training/item_inputs.h"
#include "trainer/training/epoch_checkpoint.h"
#include "trainer/training/evaluation.h"
#include "trainer/training/flat_parameters.h"
#include "trainer/training/loss.h"
#include "trainer/training/loss_scaler.h"
#include "trainer/training/one_ahead.h"
#include "trainer/training/sharded_adam.h"
#include "trainer/training/step_size.h"
#include "trainer/training/step_workers.h"
#include "trainer/training/torch_threads.h"

namespace recsys {
namespace {

absl::Status TorchError(absl::string_view where, const c10::Error& e) {
  return absl::InternalError(absl::StrCat(where, ": ", e.what_without_backtrace()));
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define RECSYS_AUTOCAST_PER_DEVICE 1
#endif

// Enables CUDA autocast to `dtype` for its lifetime (kFloat: off); CPU runs
// stay fp32.
class AutocastScope {
 public:
  explicit AutocastScope(at::ScalarType dtype) : on_(dtype != at::kFloat) {
    if (!on_) return;
#ifdef RECSYS_AUTOCAST_PER_DEVICE
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(true);
#endif
  }
  ~AutocastScope() {
    if (!on_) return;
#ifdef RECSYS_AUTOCAST_PER_DEVICE
    at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
    at::autocast::set_enabled(false);
#endif
    at::autocast::clear_cache();
  }

 private:
  bool on_;
};

// Whether CUDA device `index` computes in bf16 natively (compute capability
// 8.0+: Ampere, Hopper). Only the CMake build against a CUDA LibTorch
// (trainer/gpu) can ask the runtime; elsewhere the answer is no (fp16 with
// loss scaling is safe everywhere).
bool CudaHasBf16(int index) {
#ifdef RECSYS_WITH_CUDA_RUNTIME
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, index < 0 ? 0 : index) != cudaSuccess) return false;
  return p.major >= 8;
#else
  (void)index;
  return false;
#endif
}

// Adds the wall time since the last Lap() to a phase counter. With `sync`
// (CUDA) the device is synchronised first, so queued kernels count in the
// phase that queued them.
class PhaseClock {
 public:
  explicit PhaseClock(bool sync) : sync_(sync), last_(std::chrono::steady_clock::now()) {}
  void Lap(double* phase) {
    if (sync_) torch::cuda::synchronize();
    const auto now = std::chrono::steady_clock::now();
    *phase += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

 private:
  bool sync_;
  std::chrono::steady_clock::time_point last_;
};

// The CPU-side index structure of one training step. The windows' inputs
// are packed for the user encoder: first fit, longest first, into rows of L
// slots (Scientific: ~4 inputs per window, so ~28 rows instead of 64).
struct Batch {
  int64_t rows = 0;                  // B windows
  std::vector<int64_t> items;        // distinct item ids, sorted (U)
  int64_t packed_rows = 0;           // R
  std::vector<int64_t> seq_local;    // [R * L] index into items, U = empty slot
  std::vector<uint8_t> valid;        // [R * L]
  std::vector<int64_t> slot_position;  // [R * L] position index (end-aligned)
  std::vector<uint8_t> allowed;      // [R * L * L] query slot -> key slot
  std::vector<int64_t> positions;    // flat packed slot of each position with a target
  std::vector<int64_t> position_row; // b of each position
  std::vector<int64_t> target;       // candidate index of each position
  std::vector<int64_t> candidates;   // index into items of each candidate (C)
  std::vector<uint8_t> excluded;     // [B * C]: candidate in the user's items
  // IISAN with dense state tables, 1-thread CPU steps: the item tower's
  // inputs (ids and gathered states), made on the batch thread, off the step.
  ItemInputs inputs;
  // CPU steps, also made there: `candidates` as a [C] int64 tensor and each
  // candidate's log prior [C] (with popularity correction; State::Candidates),
  // for 1-thread steps the loss's exclusion in its additive form [P, C]
  // (ExclusionMask), and for split steps each row shard's inputs.
  torch::Tensor candidates_tensor, candidate_prior, exclusion_mask;
  struct RowShard {
    int64_t first_row = 0, rows = 0;  // packed rows [first_row, first_row + rows)
    torch::Tensor seq_index;          // [rows * L] rows of the padded `emb` (U: the zero row)
    torch::Tensor valid, slot_position, allowed;  // [rows, L] bool, long; [rows, L, L] bool
    torch::Tensor local, target;      // [P] its positions' slots (from its first), targets
    torch::Tensor excluded;           // [P, C] float: the loss's exclusion (ExclusionMaskRow)
  };
  std::vector<RowShard> row_shards;
};

// Per item id, its index in the batch being built (-1: not in it): two such
// maps (the batch's items, its targets) make every lookup in MakeBatch one
// load. Entries are reset after each batch, so it is reused from step to step.
class LocalIndexMap {
 public:
  explicit LocalIndexMap(int64_t num_items) : local_(num_items, -1) {}
  // Maps the distinct ids `v` to 0..n-1; Clear(v) before the next Set.
  void Set(const std::vector<int64_t>& v) {
    for (size_t i = 0; i < v.size(); ++i) local_[v[i]] = static_cast<int32_t>(i);
  }
  void Clear(const std::vector<int64_t>& v) {
    for (int64_t id : v) local_[id] = -1;
  }
  int32_t operator[](int64_t id) const { return local_[id]; }

 private:
  std::vector<int32_t> local_;
};

// Per modality, buffers of gathered states to reuse (FreeRows).
using StatePools = std::vector<std::vector<torch::Tensor>>;

struct BatchScratch {
  explicit BatchScratch(int64_t num_items) : item_local(num_items), target_local(num_items) {}
  LocalIndexMap item_local, target_local;
  std::vector<int64_t> targets;
  StatePools state_buffers;
};

// Rows [0, n) of a buffer shaped like `table`'s rows that no tensor but the
// pool holds any more (the step that read it is over), or of a new one with
// room to spare. Successive batches' gathered states reuse two or three
// buffers: allocated afresh each step on the batch thread, the ~1 MB
// blocks stayed in that thread's malloc arena (peak RSS +5 MB over a bench
// run of several trainers).
torch::Tensor FreeRows(std::vector<torch::Tensor>* pool, int64_t n, const torch::Tensor& table) {
  for (auto it = pool->begin(); it != pool->end();) {
    if (it->storage().use_count() != 1) {
      ++it;
    } else if (it->size(0) >= n) {
      return it->narrow(0, 0, n);
    } else {
      it = pool->erase(it);  // free but too small
    }
  }
  std::vector<int64_t> shape = table.sizes().vec();
  shape[0] = n + n / 4;
  pool->push_back(torch::empty(shape, table.options()));
  return pool->back().narrow(0, 0, n);
}

Batch MakeBatch(const LeaveOneOutSplit& split, const std::vector<size_t>& order,
                size_t begin, size_t end, int max_len, BatchScratch* scratch) {
  Batch b;
  b.rows = static_cast<int64_t>(end - begin);
  const int64_t L = max_len;
  std::vector<int64_t>& targets = scratch->targets;
  targets.clear();
  for (size_t i = begin; i < end; ++i) {
    const auto& w = split.train[order[i]].items;
    b.items.insert(b.items.end(), w.begin(), w.end());
    targets.insert(targets.end(), w.begin() + 1, w.end());
  }
  std::sort(b.items.begin(), b.items.end());
  b.items.erase(std::unique(b.items.begin(), b.items.end()), b.items.end());
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  const int64_t u = static_cast<int64_t>(b.items.size());
  const int64_t c = static_cast<int64_t>(targets.size());
  LocalIndexMap& item_local = scratch->item_local;
  LocalIndexMap& target_local = scratch->target_local;
  item_local.Set(b.items);
  target_local.Set(targets);
  b.candidates.reserve(c);
  for (int64_t t : targets) b.candidates.push_back(item_local[t]);
  // Pack: each window (n_in inputs) goes to the first row with room.
  std::vector<int64_t> n_in(b.rows), by_length(b.rows), row_of(b.rows), slot_of(b.rows);
  for (int64_t r = 0; r < b.rows; ++r) {
    n_in[r] = static_cast<int64_t>(split.train[order[begin + r]].items.size()) - 1;
  }
  std::iota(by_length.begin(), by_length.end(), 0);
  std::stable_sort(by_length.begin(), by_length.end(),
                   [&n_in](int64_t a, int64_t z) { return n_in[a] > n_in[z]; });
  std::vector<int64_t> fill;
  for (int64_t r : by_length) {
    size_t row = 0;
    while (row < fill.size() && fill[row] + n_in[r] > L) ++row;
    if (row == fill.size()) fill.push_back(0);
    row_of[r] = static_cast<int64_t>(row);
    slot_of[r] = fill[row];
    fill[row] += n_in[r];
  }
  const int64_t R = static_cast<int64_t>(fill.size());
  b.packed_rows = R;
  b.seq_local.assign(R * L, u);
  b.valid.assign(R * L, 0);
  b.slot_position.assign(R * L, 0);
  b.allowed.assign(R * L * L, 0);
  for (int64_t q = 0; q < R * L; ++q) b.allowed[q * L + q % L] = 1;  // every slot: itself
  b.excluded.assign(b.rows * c, 0);
  for (int64_t r = 0; r < b.rows; ++r) {
    const TrainWindow& win = split.train[order[begin + r]];
    const auto& w = win.items;
    const int64_t first = L - n_in[r];
    const int64_t base = row_of[r] * L + slot_of[r];
    for (int64_t t = 0; t < n_in[r]; ++t) {
      const int64_t flat = base + t;
      b.seq_local[flat] = item_local[w[t]];
      b.valid[flat] = 1;
      b.slot_position[flat] = first + t;
      for (int64_t k = 0; k <= t; ++k) b.allowed[flat * L + slot_of[r] + k] = 1;
      b.positions.push_back(flat);
      b.position_row.push_back(r);
      b.target.push_back(target_local[w[t + 1]]);
    }
    // The user's items among the candidates: one lookup per item.
    uint8_t* excluded = b.excluded.data() + r * c;
    for (int32_t item : split.train_items_of_user[win.user]) {
      const int32_t j = target_local[item];
      if (j >= 0) excluded[j] = 1;
    }
  }
  item_local.Clear(b.items);
  target_local.Clear(targets);
  return b;
}

// Boundaries of `parts` near-equal ranges of [0, n): part i is
// [b[i], b[i + 1]).
std::vector<int64_t> SplitRange(int64_t n, int parts) {
  std::vector<int64_t> b(parts + 1);
  for (int i = 0; i <= parts; ++i) b[i] = n * i / parts;
  return b;
}

// A contiguous slice [from, from + n) of a CPU vector as a tensor of its own.
template <typename T>
torch::Tensor Slice(const std::vector<T>& v, int64_t from, int64_t n, torch::Dtype dtype) {
  return torch::from_blob(const_cast<T*>(v.data()) + from, {n}, dtype).clone();
}

// The loss's exclusion in its additive form (ExclusionMaskRow) for the
// batch's positions `which` (indices into b.positions): [which.size(), C]
// float.
torch::Tensor ExclusionMask(const Batch& b, const std::vector<int64_t>& which) {
  const int64_t c = static_cast<int64_t>(b.candidates.size());
  torch::Tensor mask = torch::empty({static_cast<int64_t>(which.size()), c}, torch::kFloat);
  float* out = mask.data_ptr<float>();
  for (size_t i = 0; i < which.size(); ++i) {
    const int64_t at = which[i];
    ExclusionMaskRow(b.excluded.data() + b.position_row[at] * c, c, b.target[at], out + i * c);
  }
  return mask;
}

// The inputs of `shards` row shards of a split CPU step (see ShardedForward).
std::vector<Batch::RowShard> MakeRowShards(const Batch& b, int shards, int64_t L) {
  const std::vector<int64_t> bounds = SplitRange(b.packed_rows, shards);
  std::vector<Batch::RowShard> out(shards);
  for (int sh = 0; sh < shards; ++sh) {
    Batch::RowShard& r = out[sh];
    r.first_row = bounds[sh];
    r.rows = bounds[sh + 1] - bounds[sh];
    if (r.rows == 0) continue;
    const int64_t slot0 = r.first_row * L, slots = r.rows * L;
    r.seq_index = Slice(b.seq_local, slot0, slots, torch::kLong);
    // uint8 0/1 and bool have the same bytes.
    r.valid = Slice(b.valid, slot0, slots, torch::kUInt8).view(torch::kBool).view({r.rows, L});
    r.slot_position = Slice(b.slot_position, slot0, slots, torch::kLong).view({r.rows, L});
    r.allowed = Slice(b.allowed, slot0 * L, slots * L, torch::kUInt8)
                    .view(torch::kBool)
                    .view({r.rows, L, L});
    std::vector<int64_t> local, target, which;
    for (size_t i = 0; i < b.positions.size(); ++i) {
      const int64_t flat = b.positions[i];
      if (flat < slot0 || flat >= slot0 + slots) continue;
      local.push_back(flat - slot0);
      target.push_back(b.target[i]);
      which.push_back(static_cast<int64_t>(i));
    }
    const int64_t p = static_cast<int64_t>(local.size());
    r.local = Slice(local, 0, p, torch::kLong);
    r.target = Slice(target, 0, p, torch::kLong);
    r.excluded = ExclusionMask(b, which);
  }
  return out;
}

// Puts the model in eval mode for its lifetime (no dropout), back to train
// mode on every exit path.
class EvalModeScope {
 public:
  explicit EvalModeScope(Recommender& model) : model_(model) {
    if (!model_.is_empty()) model_->eval();
  }
  ~EvalModeScope() {
    if (!model_.is_empty()) model_->train();
  }

 private:
  Recommender& model_;
};

torch::Tensor LongTensor(const std::vector<int64_t>& v, const torch::Device& d) {
  return torch::from_blob(const_cast<int64_t*>(v.data()),
                          {static_cast<int64_t>(v.size())}, torch::kLong)
      .to(d, false, /*copy=*/true);
}

torch::Tensor BoolTensor(const std::vector<uint8_t>& v, std::vector<int64_t> shape,
                         const torch::Device& d) {
  return torch::from_blob(const_cast<uint8_t*>(v.data()), shape, torch::kUInt8)
      .to(d, torch::kBool, false, /*copy=*/true);
}

}  // namespace

// The dropout key of one training step: a function of (seed, epoch, step)
// only, so a resumed run and any thread count draw the same masks.
uint64_t StepDropoutKey(uint64_t seed, int epoch, int64_t step) {
  return MixBits(MixBits(MixBits(seed) ^ static_cast<uint64_t>(epoch)) ^
                 static_cast<uint64_t>(step));
}

// fn(i) for every i in [0, count): with `workers`, shards() of them at a
// time in parallel (fn sets its own grad mode: it is per thread); without,
// one after another on the caller.
void ForEachInParallel(StepWorkers* workers, int64_t count,
                       const std::function<void(int64_t)>& fn) {
  const int width = workers != nullptr ? workers->shards() : 1;
  for (int64_t first = 0; first < count; first += width) {
    if (workers == nullptr) {
      fn(first);
      continue;
    }
    workers->Run([&](int sh) {
      if (first + sh < count) fn(first + sh);
    });
  }
}

// A sharded step's graphs, cut at one detach boundary (see ShardedForward).
struct ShardedStep {
  std::vector<int64_t> item_bounds;      // item chunk c: [b[c], b[c+1]) of the U items
  std::vector<torch::Tensor> item_out;   // chunk c's embeddings (graph: item tower)
  torch::Tensor emb;                     // leaf [U + 1, d]: all chunks, detached; row U zero
  std::vector<float> loss_sum;           // per row shard: the sum of its positions' losses
  int64_t positions = 0;                 // N, the divisor of the mean
};

struct Trainer::State {
  TrainerOptions options;
  const InteractionData* data = nullptr;
  const ItemStateStore* store = nullptr;
  ModelKind kind = ModelKind::kIisan;
  torch::Device device{torch::kCPU};
  LeaveOneOutSplit split;
  NetworkConfig network;  // what `model` is built from
  Recommender model{nullptr};
  std::unique_ptr<torch::optim::Adam> optimizer;
  // The optimizer's parameters: one flat buffer per group (item tower, user
  // encoder) behind the module's tensors (flat_parameters.h).
  std::vector<torch::Tensor> flat_params;
  // Per modality, every item's selected standardized states [N, K, D] on
  // `device` when the store keeps them dense (ItemStateStore::dense_states);
  // empty otherwise (then states are gathered from the mapped cache).
  std::vector<torch::Tensor> state_tables;
  at::ScalarType amp = at::kFloat;  // CUDA autocast dtype; kFloat: none
  std::unique_ptr<DynamicLossScaler> scaler;  // fp16 only
  torch::Tensor log_prior;   // [N] log p(item) on device
  torch::Tensor popularity;  // [N] log(1 + count) on device
  std::unique_ptr<ProgressTracker> progress;
  PhaseTimes phases;
  // CPU: dropout masks keyed by (seed, epoch, step, packed row) instead of
  // drawn from the global generator (model/nn/keyed_dropout.h), so a step
  // split into row shards draws what the whole step draws.
  bool keyed_dropout = false;
  // Set when steps are split over several threads (CPU, num_threads >= 2).
  std::unique_ptr<StepWorkers> workers;
  // CPU training with the fused kernels: where their weights' gradients
  // go (model/nn/grad_sinks.h), per shard of a step. Shard 0's sinks are
  // the parameters' own gradients (views of flat_params' gradients); shard
  // s > 0's are row s - 1 of more_grads[g], one [shards - 1, numel] buffer
  // per parameter group (undefined with one shard), which the optimizer
  // step adds to the gradients and zeroes.
  std::vector<GradSinks> grad_sinks;
  // Split steps: item chunk c's gathered states (see ShardedForward),
  // touched only by the shard that runs chunk c.
  std::vector<StatePools> chunk_state_pools;
  std::vector<torch::Tensor> more_grads;
  // Whether every gradient is zero: the CPU's optimizer step zeroes them
  // (and more_grads) as it reads them, so the next step need not.
  bool grads_zero = false;

  // grad_sinks and more_grads for `group_params`, the parameters behind
  // each of flat_params.
  void MakeGradSinks(const std::vector<std::vector<torch::Tensor>>& group_params) {
    const int shards = workers ? workers->shards() : 1;
    grad_sinks.resize(shards);
    for (size_t g = 0; g < group_params.size(); ++g) {
      const torch::Tensor& flat = flat_params[g];
      torch::Tensor more;
      if (shards > 1) more = torch::zeros({shards - 1, flat.numel()}, flat.options());
      for (const torch::Tensor& p : group_params[g]) {
        const int64_t offset = p.data_ptr<float>() - flat.data_ptr<float>();
        grad_sinks[0].Add(p, p.grad());
        for (int sh = 1; sh < shards; ++sh) {
          grad_sinks[sh].Add(p, more[sh - 1].narrow(0, offset, p.numel()).view(p.sizes()));
        }
      }
      more_grads.push_back(more);
    }
  }

  // The sinks of shard `shard`'s graphs, or nullptr (none: autograd's).
  const GradSinks* SinksOf(int shard) const {
    return grad_sinks.empty() ? nullptr : &grad_sinks[shard];
  }

  // Before a step's first backward: zeroes the gradients unless they are.
  // In place, not optimizer->zero_grad(), which in LibTorch 2 drops the
  // buffers the parameters' gradients are views of.
  void ZeroGradForBackward() {
    if (!grads_zero) {
      for (torch::Tensor& flat : flat_params) {
        if (flat.grad().defined()) flat.grad().zero_();
      }
      for (torch::Tensor& more : more_grads) {
        if (more.defined()) more.zero_();
      }
    }
    grads_zero = false;  // the backward about to run fills them
  }

  // The item tower's inputs for `ids` (a [U] int64 tensor on `device` when
  // the tables are there; the same ids as a vector otherwise).
  absl::StatusOr<ItemInputs> Inputs(const std::vector<int64_t>& ids) {
    if (kind != ModelKind::kIisan || state_tables.empty()) {
      return GatherItemInputs(kind == ModelKind::kIisan ? store : nullptr, ids, device);
    }
    return DenseInputs(ids, nullptr);
  }

  // The batch's candidates as indices into its items [C], and with
  // popularity correction their log priors [C] (else undefined).
  std::pair<torch::Tensor, torch::Tensor> Candidates(const Batch& b) const {
    torch::Tensor local = LongTensor(b.candidates, device);
    if (!options.popularity_correction) return {local, torch::Tensor()};
    std::vector<int64_t> ids(b.candidates.size());
    for (size_t j = 0; j < ids.size(); ++j) ids[j] = b.items[b.candidates[j]];
    return {local, log_prior.index_select(0, LongTensor(ids, device))};
  }

  // IISAN's inputs for `ids` from the dense state tables (REQUIRES: they
  // exist). With `pools` (one per table, see FreeRows), the states go into
  // pooled buffers instead of new tensors.
  ItemInputs DenseInputs(const std::vector<int64_t>& ids, StatePools* pools) const {
    return DenseInputs(LongTensor(ids, device), pools);
  }
  ItemInputs DenseInputs(torch::Tensor ids, StatePools* pools) const {
    ItemInputs in;
    in.ids = std::move(ids);
    if (pools != nullptr) pools->resize(state_tables.size());
    for (size_t m = 0; m < state_tables.size(); ++m) {
      if (pools == nullptr) {
        in.states.push_back(state_tables[m].index_select(0, in.ids));
        continue;
      }
      torch::Tensor rows = FreeRows(&(*pools)[m], in.ids.size(0), state_tables[m]);
      torch::index_select_out(rows, state_tables[m], 0, in.ids);
      in.states.push_back(rows);
    }
    return in;
  }

  // The step's loss from the item embeddings `emb` [U, d] and the queries
  // (the encoder outputs at the positions with a target).
  torch::Tensor BatchLoss(const Batch& b, const torch::Tensor& emb,
                          const torch::Tensor& queries) {
    auto [cand_local, prior] = b.candidates_tensor.defined()
                                   ? std::make_pair(b.candidates_tensor, b.candidate_prior)
                                   : Candidates(b);
    torch::Tensor cands = emb.index_select(0, cand_local);
    const int64_t c = static_cast<int64_t>(b.candidates.size());
    torch::Tensor excluded = b.exclusion_mask.defined()
                                 ? b.exclusion_mask
                                 : BoolTensor(b.excluded, {b.rows, c}, device)
                                       .index_select(0, LongTensor(b.position_row, device));
    return InBatchSoftmaxLoss(queries, cands, LongTensor(b.target, device), prior, excluded);
  }

  // Sharded step, forward (CPU, `workers` set): the math of the
  // single-thread step, run as independent graphs on the workers:
  //  1. item chunks in parallel: chunk c of the U distinct items runs the
  //     side network on its rows of the batch's gathered states; the
  //     chunks' outputs are detached into one leaf `emb` [U + 1, d] (row U:
  //     zeros, what empty slots read);
  //  2. row shards in parallel: shard s takes packed rows [r_s, r_s+1)
  //     (rows are independent; its inputs come with the batch,
  //     MakeRowShards), builds its input rows from `emb`, runs the
  //     user encoder (keyed dropout with first_row = r_s draws what the
  //     whole batch draws for those rows) and the sum of the losses of the
  //     positions in its rows against all the batch's candidates, then at
  //     once that sum's backward (scaled by 1 / N) into the encoder's
  //     gradients and `emb`'s. REQUIRES: gradients zeroed.
  // The loss is (sum over shards) / N. Returns it; the graphs stay in `g`.
  absl::StatusOr<double> ShardedForward(const Batch& b, const DropoutKey& key,
                                        PhaseClock* clock, ItemInputs* in, ShardedStep* g) {
    const int n = workers->shards();
    const int64_t L = options.max_len;
    const int64_t u = static_cast<int64_t>(b.items.size());
    // With the dense tables each item chunk gathers its own states, in
    // parallel (not on the batch thread: at 2 threads it would take its
    // ~0.4 ms a step from the shards' cores, and its wake-ups delay them).
    const bool chunks_gather = kind == ModelKind::kIisan && !state_tables.empty();
    if (chunks_gather) {
      in->ids = LongTensor(b.items, device);
    } else {
      ASSIGN_OR_RETURN(*in, Inputs(b.items));
    }
    // SASRec's item side is an ID-table lookup whose backward makes a dense
    // [items, d] gradient per call: one chunk (on the caller), not n.
    g->item_bounds = SplitRange(u, kind == ModelKind::kSasrec ? 1 : n);
    g->item_bounds.resize(n + 1, u);
    g->item_out.assign(n, torch::Tensor());
    // Each chunk writes its rows of the leaf `emb` (no concatenation on the
    // caller); it requires grad once they are all in. Row U stays zero: the
    // empty slots' input (its gradient is never read).
    g->emb = torch::empty({u + 1, network.embedding_dim}, torch::TensorOptions().device(device));
    g->emb[u].zero_();
    workers->Run([&](int c) {
      const int64_t from = g->item_bounds[c], count = g->item_bounds[c + 1] - from;
      if (count == 0) return;
      const ScopedGradSinks sinks(SinksOf(c));
      ItemInputs chunk;
      if (chunks_gather) {
        chunk = DenseInputs(in->ids.narrow(0, from, count), &chunk_state_pools[c]);
      } else {
        chunk.ids = in->ids.narrow(0, from, count);
        for (const torch::Tensor& states : in->states) {
          chunk.states.push_back(states.narrow(0, from, count));
        }
      }
      g->item_out[c] = model->EmbedItems(chunk);
      torch::Tensor rows = g->emb.narrow(0, from, count);
      TORCH_CHECK(g->item_out[c].sizes() == rows.sizes(), "item chunk ", c, ": embeddings ",
                  g->item_out[c].sizes(), ", expected ", rows.sizes());
      rows.copy_(g->item_out[c].detach());
    });
    g->emb.requires_grad_(true);
    clock->Lap(&phases.side_forward);
    const torch::Tensor& cand_local = b.candidates_tensor;
    const torch::Tensor& prior = b.candidate_prior;  // undefined: no popularity correction
    g->positions = static_cast<int64_t>(b.positions.size());
    g->loss_sum.assign(n, 0.0f);
    const torch::Tensor scale =
        torch::full({}, 1.0 / static_cast<double>(g->positions), g->emb.options());
    workers->Run([&](int sh) {
      const Batch::RowShard& r = b.row_shards[sh];
      if (r.rows == 0 || r.local.numel() == 0) return;
      const ScopedGradSinks sinks(SinksOf(sh));
      torch::Tensor seq = g->emb.index_select(0, r.seq_index).view({r.rows, L, -1});
      const DropoutKey shard_key{key.key, r.first_row};
      torch::Tensor out =
          model->EncodeUsersPacked(seq, r.valid, r.slot_position, r.allowed, &shard_key)
              .reshape({r.rows * L, -1});
      torch::Tensor queries = out.index_select(0, r.local);
      torch::Tensor cands = g->emb.index_select(0, cand_local);
      torch::Tensor loss_sum =
          InBatchSoftmaxLoss(queries, cands, r.target, prior, r.excluded, /*sum=*/true);
      // Straight on into this shard's backward (one hand-off fewer); the
      // weights change only at the optimizer step, after the loss check.
      // The shard's graph is freed here, in parallel, not on the caller.
      loss_sum.backward(scale);
      g->loss_sum[sh] = loss_sum.item<float>();
    });
    // In float, shard by shard, then divided by N in float: the arithmetic
    // of the tensor ops this replaces (a float tensor / a wrapped scalar).
    float total = 0.0f;
    for (float t : g->loss_sum) total += t;
    clock->Lap(&phases.user_encoder);
    return static_cast<double>(total / static_cast<float>(g->positions));
  }

  // Sharded step, backward (the encoder's ran in ShardedForward): each
  // item chunk's side network backward from its rows of emb's gradient, in
  // parallel. Concurrent backward calls (here and in the row shards) accumulate into
  // the shared gradients (parameters, `emb`) under LibTorch's per-variable
  // lock (AccumulateGrad), each adding one term: with 2 shards the sum
  // 0 + a + b is the same in either order (IEEE addition commutes), so
  // runs are bit-reproducible; with more, the order may vary the last bits.
  void ShardedBackward(ShardedStep* g) {
    const torch::Tensor emb_grad = g->emb.grad();
    workers->Run([&](int c) {
      if (!g->item_out[c].defined()) return;
      const int64_t from = g->item_bounds[c], count = g->item_bounds[c + 1] - from;
      g->item_out[c].backward(emb_grad.narrow(0, from, count));
      g->item_out[c] = torch::Tensor();  // its graph freed here, in parallel
    });
  }

  // Item embeddings of all items, [N, d], computed in chunks; no grad.
  // With workers (and the states in dense tables, or SASRec's ID table),
  // `shards` chunks at a time run in parallel.
  absl::StatusOr<torch::Tensor> AllItemEmbeddings() {
    const int64_t n = data->num_items();
    const int64_t chunks = (n + options.item_chunk - 1) / options.item_chunk;
    std::vector<torch::Tensor> parts(chunks);
    std::vector<absl::Status> errors(chunks);
    auto chunk = [&](int64_t ci) {
      torch::NoGradGuard no_grad;  // per thread
      const int64_t begin = ci * options.item_chunk;
      absl::StatusOr<torch::Tensor> e = ItemEmbeddingsOf(begin, std::min(n, begin + options.item_chunk));
      if (e.ok()) {
        parts[ci] = *std::move(e);
      } else {
        errors[ci] = e.status();
      }
    };
    const bool parallel = workers && (kind == ModelKind::kSasrec || !state_tables.empty());
    ForEachInParallel(parallel ? workers.get() : nullptr, chunks, chunk);
    for (const absl::Status& e : errors) RETURN_IF_ERROR(e);
    return torch::cat(parts, 0);
  }

  // The embeddings of items [begin, end).
  absl::StatusOr<torch::Tensor> ItemEmbeddingsOf(int64_t begin, int64_t end) {
    ItemInputs in;
    if (kind == ModelKind::kIisan && !state_tables.empty()) {
      in.ids = torch::arange(begin, end, torch::TensorOptions().dtype(torch::kLong).device(device));
      for (const torch::Tensor& t : state_tables) in.states.push_back(t.narrow(0, begin, end - begin));
    } else {
      std::vector<int64_t> ids(end - begin);
      std::iota(ids.begin(), ids.end(), begin);
      ASSIGN_OR_RETURN(in, GatherItemInputs(kind == ModelKind::kIisan ? store : nullptr, ids,
                                            device));
    }
    AutocastScope autocast(amp);
    return model->EmbedItems(in).to(torch::kFloat);
  }

  // [B, d] user vectors from the last max_len items of each history.
  torch::Tensor EncodeHistories(const torch::Tensor& item_emb,
                                const std::vector<const std::vector<int32_t>*>& histories) {
    const int64_t L = options.max_len;
    const int64_t b = static_cast<int64_t>(histories.size());
    const int64_t pad = item_emb.size(0);
    std::vector<int64_t> idx(b * L, pad);
    std::vector<uint8_t> valid(b * L, 0);
    for (int64_t r = 0; r < b; ++r) {
      std::vector<int32_t> last = LastItems(*histories[r], options.max_len);
      const int64_t first = L - static_cast<int64_t>(last.size());
      for (size_t t = 0; t < last.size(); ++t) {
        idx[r * L + first + t] = last[t];
        valid[r * L + first + t] = 1;
      }
    }
    torch::Tensor table = torch::cat({item_emb, torch::zeros({1, item_emb.size(1)}, item_emb.options())});
    torch::Tensor seq = table.index_select(0, LongTensor(idx, device)).view({b, L, -1});
    AutocastScope autocast(amp);
    torch::Tensor out = model->EncodeUsers(seq, BoolTensor(valid, {b, L}, device));
    return out.select(1, L - 1).to(torch::kFloat);
  }
};

Trainer::Trainer(std::unique_ptr<State> state) : state_(std::move(state)) {}
Trainer::~Trainer() = default;

const LeaveOneOutSplit& Trainer::split() const { return state_->split; }
const PhaseTimes& Trainer::phase_times() const { return state_->phases; }

const NetworkConfig& Trainer::network() const { return state_->network; }
int64_t Trainer::embedding_dim() const { return state_->options.embedding_dim; }

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainerOptions& o,
                                                         const InteractionData* data,
                                                         const ItemStateStore* store) {
  auto s = std::make_unique<State>();
  s->options = o;
  s->data = data;
  s->store = store;
  ASSIGN_OR_RETURN(s->kind, ParseModelKind(o.model));
  if (data == nullptr || data->num_items() == 0) {
    return absl::InvalidArgumentError("no interaction data");
  }
  if (o.batch_size < 1) return absl::InvalidArgumentError("batch_size must be >= 1");
  if (o.max_len < 1) return absl::InvalidArgumentError("max_len must be >= 1");
  if (o.epochs < 0) return absl::InvalidArgumentError("epochs must be >= 0");
  // 100000 threads had ended the process in std::terminate (thread creation
  // failing); a negative count was taken for the default.
  if (o.num_threads < 0 || o.num_threads > kMaxTrainerThreads) {
    return absl::InvalidArgumentError(absl::StrCat("num_threads must be in [0, ",
                                                   kMaxTrainerThreads,
                                                   "] (0: LibTorch's default), got ",
                                                   o.num_threads));
  }
  // patience 0 trained no epoch at all and exported the untrained networks
  // as a successful run.
  if (o.patience < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "patience must be >= 1 (epochs without a validation gain before stopping), got ",
        o.patience));
  }
  if (o.max_steps_per_epoch < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_steps_per_epoch must be >= 0 (0: all), got ", o.max_steps_per_epoch));
  }
  // NaN, infinities, zero, negative and denormal rates are refused here; a
  // finite rate too large for the data is caught by the divergence check.
  for (const auto& [name, lr] : {std::pair<const char*, double>{"item_tower_lr", o.item_tower_lr},
                                 {"user_encoder_lr", o.user_encoder_lr}}) {
    if (!(lr >= 1e-9 && std::isfinite(lr))) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " must be a finite number >= 1e-9, got ", lr));
    }
  }
  if (o.item_chunk < 1 || o.eval_batch_size < 1) {
    return absl::InvalidArgumentError("item_chunk and eval_batch_size must be >= 1");
  }
  if (o.num_heads < 1 || o.embedding_dim % o.num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "embedding_dim ", o.embedding_dim, " must be a multiple of num_heads ", o.num_heads));
  }
  if (s->kind == ModelKind::kIisan) {
    if (store == nullptr) {
      return absl::InvalidArgumentError("model=iisan needs at least one hidden-state cache");
    }
    if (store->num_items() != data->num_items()) {
      return absl::InvalidArgumentError("the state store was built for other items");
    }
  }
  try {
    s->device = torch::Device(o.device);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("device \"", o.device, "\": expected cpu or cuda[:N]"));
  }
  if (s->device.is_cuda() && !torch::cuda::is_available()) {
    return absl::UnavailableError("device=cuda requested but no CUDA device is available");
  }
  s->keyed_dropout = !s->device.is_cuda();
  if (o.num_threads >= 2 && o.shard_steps && !s->device.is_cuda() &&
      s->kind != ModelKind::kPopularity) {
    // Coarse-grained: N shards of each step, each on one intra-op thread.
    LOG(INFO) << "threads: steps split over " << o.num_threads << " workers, each with "
              << ConfigureTorchThreads(1);
    s->workers = std::make_unique<StepWorkers>(o.num_threads, o.serial_shards);
    s->phases.shards = o.num_threads;
  } else if (o.num_threads > 0) {
    LOG(INFO) << "threads: " << ConfigureTorchThreads(o.num_threads);
  }
  if (o.amp != "auto" && o.amp != "bf16" && o.amp != "fp16" && o.amp != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("amp \"", o.amp, "\": expected auto, bf16, fp16 or off"));
  }
  if (s->device.is_cuda() && o.amp != "off") {
    const bool bf16 = o.amp == "bf16" || (o.amp == "auto" && CudaHasBf16(s->device.index()));
    s->amp = bf16 ? at::kBFloat16 : at::kHalf;
    if (!bf16) s->scaler = std::make_unique<DynamicLossScaler>();
    LOG(INFO) << "CUDA mixed precision: " << (bf16 ? "bf16 autocast" : "fp16 autocast + dynamic loss scaling");
  }
  s->split = SplitLeaveOneOut(*data, o.max_len);
  if (s->split.test.empty()) {
    size_t longest = 0;
    for (const auto& seq : data->sequences) longest = std::max(longest, seq.size());
    return absl::InvalidArgumentError(absl::StrCat(
        "interactions: no user is evaluable: leave-one-out needs users with at least 3 "
        "items (", data->num_users(), " users, the longest has ", longest, ")"));
  }
  if (s->kind != ModelKind::kPopularity && s->split.train.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "interactions: no training transitions: every user's training prefix (all but "
        "the last 2 items) has fewer than 2 items (", data->num_users(), " users)"));
  }
  try {
    torch::manual_seed(o.seed);
    const auto& counts = s->split.train_item_counts;
    const double total = std::max<double>(
        1.0, std::accumulate(counts.begin(), counts.end(), 0.0));
    std::vector<float> lp(counts.size()), pop(counts.size());
    for (size_t i = 0; i < counts.size(); ++i) {
      lp[i] = static_cast<float>(std::log(std::max<double>(counts[i], 0.5) / total));
      pop[i] = static_cast<float>(std::log1p(static_cast<double>(counts[i])));
    }
    s->log_prior = torch::tensor(lp).to(s->device);
    s->popularity = torch::tensor(pop).to(s->device);
    if (s->kind != ModelKind::kPopularity) {
      NetworkConfig& net = s->network;
      net.model = ModelKindName(s->kind);
      net.num_items = data->num_items();
      net.embedding_dim = o.embedding_dim;
      net.max_len = o.max_len;
      net.num_heads = o.num_heads;
      net.num_layers = o.num_layers;
      net.ffn_dim = o.ffn_dim;
      net.dropout = o.dropout;
      net.bottleneck = o.bottleneck;
      net.inter_path = o.inter_path;
      if (s->kind == ModelKind::kIisan) {
        net.modalities = ModalityConfigsFor(*store);
        for (int m = 0; m < store->num_modalities(); ++m) {
          net.standardize_states |= !store->mean(m).empty();
        }
        // One modality has no inter-modal path, whatever the option says.
        net.inter_path = o.inter_path && store->num_modalities() == 2;
      }
      if (absl::Status valid = ValidateNetworkConfig(net); !valid.ok()) return valid;
      // Settings each in range (checked just above) can still make a step
      // no machine holds.
      StepSize step;
      step.batch_size = o.batch_size;
      step.max_len = o.max_len;
      step.embedding_dim = o.embedding_dim;
      step.ffn_dim = o.ffn_dim;
      step.num_heads = o.num_heads;
      step.num_items = data->num_items();
      RETURN_IF_ERROR(CheckStepSize(step, ""));
      RecommenderOptions model_options = RecommenderOptionsFor(net);
      model_options.user_encoder.fused_cpu_training(o.fused_kernels);
      model_options.item_encoder.fused_cpu_training = o.fused_kernels;
      s->model = Recommender(model_options);
      s->model->to(s->device);
      const std::vector<std::vector<torch::Tensor>> group_params = {
          s->model->ItemTowerParameters(), s->model->UserEncoderParameters()};
      s->flat_params = {FlattenParameters(group_params[0]), FlattenParameters(group_params[1])};
      if (s->device.is_cpu() && o.fused_kernels) s->MakeGradSinks(group_params);
      if (s->kind == ModelKind::kIisan) {
        for (int m = 0; m < store->num_modalities(); ++m) {
          const float* dense = store->dense_states(m);
          if (dense == nullptr) {
            s->state_tables.clear();
            break;
          }
          // The store outlives the trainer (REQUIRES of Create): no copy on CPU.
          s->state_tables.push_back(
              torch::from_blob(const_cast<float*>(dense),
                               {data->num_items(), store->num_blocks(m), store->hidden_size(m)},
                               torch::kFloat)
                  .to(s->device));
        }
      }
      std::vector<torch::optim::OptimizerParamGroup> groups;
      groups.emplace_back(std::vector<torch::Tensor>{s->flat_params[0]},
                          std::make_unique<torch::optim::AdamOptions>(
                              torch::optim::AdamOptions(o.item_tower_lr).weight_decay(o.weight_decay)));
      groups.emplace_back(std::vector<torch::Tensor>{s->flat_params[1]},
                          std::make_unique<torch::optim::AdamOptions>(
                              torch::optim::AdamOptions(o.user_encoder_lr).weight_decay(o.weight_decay)));
      s->optimizer = std::make_unique<torch::optim::Adam>(std::move(groups));
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("building the model: ", e.what_without_backtrace()));
  }
  ProgressTracker::Options po;
  po.name = "train";
  po.unit = "positions";
  po.log_interval = o.log_interval;
  s->progress = std::make_unique<ProgressTracker>(po);
  return std::unique_ptr<Trainer>(new Trainer(std::move(s)));
}

absl::StatusOr<double> Trainer::TrainEpoch(int epoch) {
  State& s = *state_;
  if (s.kind == ModelKind::kPopularity) return 0.0;
  const auto& windows = s.split.train;
  std::vector<size_t> order(windows.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(s.options.seed * 1000003ull + static_cast<uint64_t>(epoch));
  std::shuffle(order.begin(), order.end(), rng);
  int64_t steps = (static_cast<int64_t>(order.size()) + s.options.batch_size - 1) /
                  s.options.batch_size;
  if (s.options.max_steps_per_epoch > 0) {
    steps = std::min<int64_t>(steps, s.options.max_steps_per_epoch);
  }
  int64_t total_positions = 0;
  for (int64_t i = 0; i < std::min<int64_t>(order.size(), steps * s.options.batch_size); ++i) {
    total_positions += static_cast<int64_t>(windows[order[i]].items.size()) - 1;
  }
  s.progress->Start(total_positions, absl::StrFormat("epoch %d", epoch));
  s.model->train();
  double loss_sum = 0;
  int64_t done = 0;
  const int64_t L = s.options.max_len;
  // The next step's batch is built on another thread while this step
  // computes: the index work, on the CPU a split step's per-shard inputs,
  // and for a 1-thread CPU step the gather of IISAN's states.
  BatchScratch scratch(s.data->num_items());
  const bool split = s.workers != nullptr;  // split steps run on the CPU only
  // Split steps gather in their item chunks instead (ShardedForward).
  const bool gather_ahead = s.kind == ModelKind::kIisan && !s.state_tables.empty() &&
                            s.device.is_cpu() && !split;
  if (split) s.chunk_state_pools.resize(s.workers->shards());
  OneAhead<Batch> next([&s, &order, &scratch, split, gather_ahead](int64_t step) {
    const size_t begin = step * s.options.batch_size;
    const size_t end = std::min(order.size(), begin + s.options.batch_size);
    Batch b = MakeBatch(s.split, order, begin, end, s.options.max_len, &scratch);
    if (gather_ahead) b.inputs = s.DenseInputs(b.items, &scratch.state_buffers);
    if (s.device.is_cpu()) std::tie(b.candidates_tensor, b.candidate_prior) = s.Candidates(b);
    if (s.device.is_cpu() && !split) {
      std::vector<int64_t> all(b.positions.size());
      std::iota(all.begin(), all.end(), 0);
      b.exclusion_mask = ExclusionMask(b, all);
    }
    if (split) b.row_shards = MakeRowShards(b, s.workers->shards(), s.options.max_len);
    return b;
  });
  if (steps > 0) next.Start(0);
  try {
    for (int64_t step = 0; step < steps; ++step) {
      PhaseClock clock(s.device.is_cuda() && s.options.time_phases);
      Batch b = next.Take();
      if (step + 1 < steps) next.Start(step + 1);
      const DropoutKey dropout_key{StepDropoutKey(s.options.seed, epoch, step), 0};
      torch::Tensor loss;
      double l = 0;
      ShardedStep sharded;
      ItemInputs in;
      if (s.workers) {
        // Gather time counts in side_forward (the chunks gather their own),
        // the encoder's backward in user_encoder.
        s.ZeroGradForBackward();  // the row shards run their backward in it
        ASSIGN_OR_RETURN(l, s.ShardedForward(b, dropout_key, &clock, &in, &sharded));
      } else {
        if (b.inputs.ids.defined()) {
          in = b.inputs;  // gathered with the batch
        } else {
          ASSIGN_OR_RETURN(in, s.Inputs(b.items));
        }
        clock.Lap(&s.phases.gather);
        AutocastScope autocast(s.amp);
        const ScopedGradSinks sinks(s.SinksOf(0));
        torch::Tensor emb = s.model->EmbedItems(in);  // [U, d], once per item
        clock.Lap(&s.phases.side_forward);
        torch::Tensor table = torch::cat({emb, torch::zeros({1, emb.size(1)}, emb.options())});
        const int64_t R = b.packed_rows;
        torch::Tensor seq =
            table.index_select(0, LongTensor(b.seq_local, s.device)).view({R, L, -1});
        torch::Tensor out =
            s.model
                ->EncodeUsersPacked(seq, BoolTensor(b.valid, {R, L}, s.device),
                                    LongTensor(b.slot_position, s.device).view({R, L}),
                                    BoolTensor(b.allowed, {R, L, L}, s.device),
                                    s.keyed_dropout ? &dropout_key : nullptr)
                .reshape({R * L, -1});
        torch::Tensor queries = out.index_select(0, LongTensor(b.positions, s.device));
        clock.Lap(&s.phases.user_encoder);
        loss = s.BatchLoss(b, emb, queries);
        l = loss.item<double>();
      }
      clock.Lap(&s.phases.loss);
      if (!std::isfinite(l)) {
        // Stop before the step: it would write NaN into every weight.
        return absl::InternalError(absl::StrFormat(
            "training diverged: epoch %d step %d/%d has a non-finite loss (%f); check the "
            "learning rates (item_tower_lr %g, user_encoder_lr %g) and the input states",
            epoch, step + 1, steps, l, s.options.item_tower_lr, s.options.user_encoder_lr));
      }
      if (!s.workers) s.ZeroGradForBackward();  // split steps: before their forward
      if (s.workers) {
        s.ShardedBackward(&sharded);
      } else if (s.scaler) {
        s.scaler->Scale(loss).backward();
      } else {
        loss.backward();
      }
      clock.Lap(&s.phases.backward);
      // fp16: a step whose scaled gradients overflowed is skipped (the
      // scaler backs off); the weights never see Inf.
      if (!s.scaler || s.scaler->UnscaleAndUpdate({s.flat_params[0].grad(),
                                                     s.flat_params[1].grad()})) {
        if (s.device.is_cpu()) {
          // step() and the next zero_grad() in one pass
          ShardedAdamStep(*s.optimizer, s.workers.get(), /*zero_grad=*/true, s.more_grads);
          s.grads_zero = true;
        } else {
          s.optimizer->step();
        }
      }
      clock.Lap(&s.phases.optimizer);
      ++s.phases.steps;
      s.phases.items += static_cast<int64_t>(b.items.size());
      s.phases.encoder_slots += b.packed_rows * s.options.max_len;
      s.phases.loss_positions += static_cast<int64_t>(b.positions.size());
      s.phases.candidates += static_cast<int64_t>(b.candidates.size());
      if (s.workers) {
        const StepWorkers::CpuTimes& cpu = s.workers->cpu_times();
        s.phases.shard0_cpu = cpu.per_shard[0];
        s.phases.shard_cpu = std::accumulate(cpu.per_shard.begin(), cpu.per_shard.end(), 0.0);
        s.phases.critical_cpu = cpu.critical;
      }
      loss_sum += l;
      done += static_cast<int64_t>(b.positions.size());
      s.progress->SetPhase(absl::StrFormat("epoch %d/%d step %d/%d loss %.4f", epoch,
                                           s.options.epochs, step + 1, steps, l));
      s.progress->Update(done);
      if (s.options.on_progress) {
        TrainProgress p;
        p.epoch = epoch;
        p.epochs = s.options.epochs;
        p.step = step + 1;
        p.steps = steps;
        p.loss = l;
        p.progress = s.progress->Snapshot();
        RETURN_IF_ERROR(s.options.on_progress(p));
      }
    }
  } catch (const c10::Error& e) {
    return TorchError("training step", e);
  }
  s.progress->Finish();
  return steps > 0 ? loss_sum / static_cast<double>(steps) : 0.0;
}

absl::StatusOr<RankingReport> Trainer::Evaluate(const std::vector<EvalExample>& examples,
                                                bool repeated_target_is_miss) {
  State& s = *state_;
  RankingMetrics metrics;
  PhaseClock clock(s.device.is_cuda() && s.options.time_phases);
  try {
    torch::NoGradGuard no_grad;
    torch::Tensor items;
    EvalModeScope eval_mode(s.model);
    if (s.kind != ModelKind::kPopularity) {
      ASSIGN_OR_RETURN(items, s.AllItemEmbeddings());
    }
    // The ranks of examples [begin, end) (scoring, finiteness, ranking).
    auto rank_batch = [&](size_t begin, size_t end) -> absl::StatusOr<std::vector<TargetRank>> {
      std::vector<int64_t> targets;
      std::vector<std::vector<int32_t>> histories;
      std::vector<const std::vector<int32_t>*> hist_ptrs;
      for (size_t i = begin; i < end; ++i) {
        targets.push_back(examples[i].target);
        hist_ptrs.push_back(&examples[i].history);
      }
      torch::Tensor scores;
      if (s.kind == ModelKind::kPopularity) {
        scores = s.popularity.unsqueeze(0).expand({static_cast<int64_t>(end - begin), -1});
      } else {
        scores = torch::matmul(s.EncodeHistories(items, hist_ptrs), items.t());
      }
      for (size_t i = begin; i < end; ++i) histories.push_back(examples[i].history);
      if (!std::isfinite(scores.max().item<float>()) ||
          !std::isfinite(scores.min().item<float>())) {  // NaN / Inf propagate
        return absl::InternalError(absl::StrCat(
            "evaluation: the model gave examples ", begin, "..", end - 1,
            " non-finite scores (NaN or Inf); no metrics are reported for such a model"));
      }
      return RankTargets(scores, targets, histories);
    };
    // With workers, `shards` batches at a time are ranked in parallel; the
    // metrics take them in order, so the report does not depend on it. After
    // a failed batch no later one starts.
    const size_t batch = s.options.eval_batch_size;
    const int64_t batches = static_cast<int64_t>((examples.size() + batch - 1) / batch);
    std::vector<absl::StatusOr<std::vector<TargetRank>>> ranked(
        batches, absl::InternalError("evaluation batch not run"));
    std::atomic<bool> failed{false};
    ForEachInParallel(s.workers.get(), batches, [&](int64_t i) {
      if (failed.load()) return;
      torch::NoGradGuard no_grad_here;  // per thread
      const size_t begin = i * batch;
      ranked[i] = rank_batch(begin, std::min(examples.size(), begin + batch));
      if (!ranked[i].ok()) failed = true;
    });
    for (int64_t b = 0; b < batches; ++b) {
      RETURN_IF_ERROR(ranked[b].status());
      const size_t begin = b * batch;
      const std::vector<TargetRank>& ranks = *ranked[b];
      for (size_t i = 0; i < ranks.size(); ++i) {
        const auto& h = examples[begin + i].history;
        const int64_t target = examples[begin + i].target;
        if (repeated_target_is_miss && std::find(h.begin(), h.end(), target) != h.end()) {
          metrics.Add(std::numeric_limits<int64_t>::max());
        } else {
          metrics.Add(ranks[i].higher, ranks[i].tied);
        }
      }
    }
  } catch (const c10::Error& e) {
    return TorchError("evaluation", e);
  }
  clock.Lap(&s.phases.evaluation);
  ++s.phases.evaluations;
  return metrics.Report();
}

namespace {

// The loop's results so far, for the epoch checkpoint.
nlohmann::json ReportJson(const RankingReport& r) {
  nlohmann::json hr = nlohmann::json::object(), ndcg = nlohmann::json::object();
  for (const auto& [k, v] : r.hit_rate) hr[std::to_string(k)] = v;
  for (const auto& [k, v] : r.ndcg) ndcg[std::to_string(k)] = v;
  return {{"count", r.count}, {"hr", hr}, {"ndcg", ndcg}};
}

RankingReport ReportFromJson(const nlohmann::json& j) {
  RankingReport r;
  r.count = j.value("count", int64_t{0});
  for (const auto& [k, v] : j.at("hr").items()) r.hit_rate[std::stoi(k)] = v.get<double>();
  for (const auto& [k, v] : j.at("ndcg").items()) r.ndcg[std::stoi(k)] = v.get<double>();
  return r;
}

std::string ResultsJson(const TrainResult& r) {
  nlohmann::json epochs = nlohmann::json::array();
  for (const EpochStats& e : r.epochs) {
    epochs.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"train_seconds", e.train_seconds},
                      {"positions_per_second", e.positions_per_second},
                      {"validation", ReportJson(e.validation)}});
  }
  return nlohmann::json({{"epochs", epochs}, {"best_epoch", r.best_epoch},
                         {"best_validation", ReportJson(r.best_validation)}})
      .dump();
}

absl::Status ResultsFromJson(const std::string& text, TrainResult* r) {
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    for (const auto& e : j.at("epochs")) {
      EpochStats s;
      s.epoch = e.at("epoch").get<int>();
      s.loss = e.at("loss").get<double>();
      s.train_seconds = e.at("train_seconds").get<double>();
      s.positions_per_second = e.at("positions_per_second").get<double>();
      s.validation = ReportFromJson(e.at("validation"));
      r->epochs.push_back(s);
    }
    r->best_epoch = j.at("best_epoch").get<int>();
    r->best_validation = ReportFromJson(j.at("best_validation"));
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("epoch checkpoint results: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainResult> Trainer::Train() {
  State& s = *state_;
  TrainResult result;
  if (s.kind == ModelKind::kPopularity) {
    ASSIGN_OR_RETURN(result.best_validation, Evaluate(s.split.validation));
    ASSIGN_OR_RETURN(result.test, Evaluate(s.split.test));
    ASSIGN_OR_RETURN(result.test_repeats_as_misses, Evaluate(s.split.test, true));
    return result;
  }
  std::vector<std::pair<std::string, torch::Tensor>> best;
  double best_score = -1;
  int since_best = 0;
  double train_seconds = 0;
  int first_epoch = 1;
  if (!s.options.resume_dir.empty()) {
    EpochLoopState loop;
    ASSIGN_OR_RETURN(bool resumed,
                     LoadEpochCheckpoint(s.options.resume_dir, &loop, *s.model, &best, *s.optimizer));
    if (resumed) {
      RETURN_IF_ERROR(ResultsFromJson(loop.results_json, &result));
      best_score = loop.best_score;
      since_best = loop.since_best;
      train_seconds = loop.train_seconds;
      first_epoch = loop.epoch + 1;
      LOG(INFO) << "resuming after epoch " << loop.epoch << " from " << s.options.resume_dir;
    }
  }
  for (int epoch = first_epoch; epoch <= s.options.epochs && since_best < s.options.patience;
       ++epoch) {
    EpochStats stats;
    stats.epoch = epoch;
    const absl::Time start = absl::Now();
    ASSIGN_OR_RETURN(stats.loss, TrainEpoch(epoch));
    stats.train_seconds = absl::ToDoubleSeconds(absl::Now() - start);
    stats.positions_per_second = s.progress->Snapshot().rate;
    train_seconds += stats.train_seconds;
    ASSIGN_OR_RETURN(stats.validation, Evaluate(s.split.validation));
    LOG(INFO) << absl::StrFormat(
        "epoch %d: loss %.4f, %.1f s, %.0f positions/s, valid HR@10 %.4f NDCG@10 %.4f",
        epoch, stats.loss, stats.train_seconds, stats.positions_per_second,
        stats.validation.hr(10), stats.validation.ndcg_at(10));
    result.epochs.push_back(stats);
    const double score = stats.validation.ndcg_at(10);
    if (score > best_score) {
      best_score = score;
      since_best = 0;
      result.best_epoch = epoch;
      result.best_validation = stats.validation;
      best.clear();
      torch::NoGradGuard no_grad;
      for (const auto& p : s.model->named_parameters()) {
        best.emplace_back(p.key(), p.value().detach().clone());
      }
      if (!s.options.checkpoint_path.empty()) {
        ASSIGN_OR_RETURN(auto params, Parameters());
        RETURN_IF_ERROR(WriteCheckpoint(s.options.checkpoint_path, {params, ConfigJson()}));
      }
    } else {
      ++since_best;
    }
    // Written before the epoch is reported, so a reported epoch is resumable.
    if (!s.options.resume_dir.empty()) {
      EpochLoopState loop{epoch, best_score, since_best, train_seconds, ResultsJson(result)};
      RETURN_IF_ERROR(SaveEpochCheckpoint(s.options.resume_dir, loop, *s.model, best,
                                          *s.optimizer));
    }
    if (s.options.on_progress) {
      TrainProgress p;
      p.epoch = epoch;
      p.epochs = s.options.epochs;
      p.loss = stats.loss;
      p.finished_epoch = &result.epochs.back();
      RETURN_IF_ERROR(s.options.on_progress(p));
    }
    if (since_best >= s.options.patience) {
      LOG(INFO) << "early stop after epoch " << epoch << " (best " << result.best_epoch << ")";
    }
  }
  if (!best.empty()) {
    torch::NoGradGuard no_grad;
    auto params = s.model->named_parameters();
    for (const auto& [name, value] : best) params[name].copy_(value);
  }
  if (!result.epochs.empty()) {
    result.mean_epoch_seconds = train_seconds / static_cast<double>(result.epochs.size());
  }
  ASSIGN_OR_RETURN(result.test, Evaluate(s.split.test));
  ASSIGN_OR_RETURN(result.test_repeats_as_misses, Evaluate(s.split.test, true));
  return result;
}

absl::StatusOr<std::vector<float>> Trainer::ItemEmbeddings() {
  State& s = *state_;
  if (s.kind == ModelKind::kPopularity) {
    return absl::FailedPreconditionError("the popularity baseline has no embeddings");
  }
  try {
    torch::NoGradGuard no_grad;
    s.model->eval();
    ASSIGN_OR_RETURN(torch::Tensor e, s.AllItemEmbeddings());
    s.model->train();
    e = e.to(torch::kCPU).contiguous();
    const int64_t bad = (~torch::isfinite(e)).sum().item<int64_t>();
    if (bad > 0) {
      return absl::InternalError(absl::StrCat("item embeddings: ", bad,
                                              " non-finite values (NaN or Inf)"));
    }
    return std::vector<float>(e.data_ptr<float>(), e.data_ptr<float>() + e.numel());
  } catch (const c10::Error& e) {
    return TorchError("item embeddings", e);
  }
}

absl::StatusOr<std::vector<float>> Trainer::UserVectors(
    const std::vector<std::vector<int32_t>>& histories) {
  State& s = *state_;
  if (s.kind == ModelKind::kPopularity) {
    return absl::FailedPreconditionError("the popularity baseline has no user vectors");
  }
  try {
    torch::NoGradGuard no_grad;
    s.model->eval();
    ASSIGN_OR_RETURN(torch::Tensor items, s.AllItemEmbeddings());
    std::vector<const std::vector<int32_t>*> ptrs;
    for (const auto& h : histories) ptrs.push_back(&h);
    torch::Tensor u = s.EncodeHistories(items, ptrs).to(torch::kCPU).contiguous();
    s.model->train();
    const int64_t bad = (~torch::isfinite(u)).sum().item<int64_t>();
    if (bad > 0) {
      return absl::InternalError(absl::StrCat("user vectors: ", bad,
                                              " non-finite values (NaN or Inf)"));
    }
    return std::vector<float>(u.data_ptr<float>(), u.data_ptr<float>() + u.numel());
  } catch (const c10::Error& e) {
    return TorchError("user vectors", e);
  }
}

absl::StatusOr<std::vector<NamedTensor>> Trainer::Parameters() const {
  std::vector<NamedTensor> out;
  if (!state_->model) return out;
  try {
    for (const auto& p : state_->model->named_parameters()) {
      torch::Tensor t = p.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
      NamedTensor nt;
      nt.name = p.key();
      nt.shape = t.sizes().vec();
      nt.values.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
      out.push_back(std::move(nt));
    }
  } catch (const c10::Error& e) {
    return TorchError("reading parameters", e);
  }
  return out;
}

absl::Status Trainer::LoadParameters(const std::vector<NamedTensor>& tensors) {
  if (!state_->model) return absl::FailedPreconditionError("no model to load into");
  try {
    torch::NoGradGuard no_grad;
    auto params = state_->model->named_parameters();
    size_t loaded = 0;
    for (const NamedTensor& t : tensors) {
      // Input statistics saved beside the weights in a model version
      // (train --standardize_states) belong to the data side, not the module.
      if (absl::StartsWith(t.name, "state_standardization.")) continue;
      ++loaded;
      torch::Tensor* p = params.find(t.name);
      if (p == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("unknown parameter ", t.name));
      }
      if (p->sizes().vec() != t.shape) {
        return absl::InvalidArgumentError(absl::StrCat("shape mismatch for ", t.name));
      }
      p->copy_(torch::from_blob(const_cast<float*>(t.values.data()), t.shape, torch::kFloat));
    }
    if (loaded != params.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint has ", loaded, " parameters, model ", params.size()));
    }
  } catch (const c10::Error& e) {
    return TorchError("loading parameters", e);
  }
  return absl::OkStatus();
}

std::string Trainer::ConfigJson() const {
  const TrainerOptions& o = state_->options;
  nlohmann::json j;
  j["model"] = o.model;
  j["epochs"] = o.epochs;
  j["patience"] = o.patience;
  j["batch_size"] = o.batch_size;
  j["max_len"] = o.max_len;
  j["embedding_dim"] = o.embedding_dim;
  j["bottleneck"] = o.bottleneck;
  j["inter_path"] = o.inter_path;
  j["num_heads"] = o.num_heads;
  j["num_layers"] = o.num_layers;
  j["ffn_dim"] = o.ffn_dim;
  j["dropout"] = o.dropout;
  j["item_tower_lr"] = o.item_tower_lr;
  j["user_encoder_lr"] = o.user_encoder_lr;
  j["weight_decay"] = o.weight_decay;
  j["popularity_correction"] = o.popularity_correction;
  j["seed"] = o.seed;
  j["num_items"] = state_->data->num_items();
  j["num_users"] = state_->data->num_users();
  if (state_->kind == ModelKind::kIisan) {
    nlohmann::json mods = nlohmann::json::array();
    for (int m = 0; m < state_->store->num_modalities(); ++m) {
      mods.push_back({{"modality", state_->store->modality(m)},
                      {"hidden_size", state_->store->hidden_size(m)},
                      {"states", state_->store->state_indices(m)},
                      {"backbone", state_->store->info(m).backbone},
                      {"cache_fingerprint", state_->store->info(m).fingerprint},
                      {"standin", state_->store->info(m).standin}});
    }
    j["modalities"] = mods;
  }
  if (state_->kind != ModelKind::kPopularity) NetworkConfigToJson(state_->network, &j);
  return j.dump();
}

}  // namespace recsys
