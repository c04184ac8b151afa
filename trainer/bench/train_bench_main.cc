// The trainer's speed on Amazon Scientific (or a synthetic set of the same
// size when the real data or its cache is absent): steps/s and seconds per
// epoch at each thread count, the per-phase breakdown of a step, the
// evaluation time, peak RSS, the load average and the host's CPU steal
// (host_cpu.h: time the hypervisor gave elsewhere) around each measurement, and,
// when /usr/bin/python3 can import torch, the same step in plain PyTorch
// (reference_step.py) side by side, and on the CPU how evenly this machine
// runs the same work on two cores at once (core_balance.h: the ceiling of a
// 2-thread split here). One JSON object on stdout (and --out).
//
//   train_bench --interactions=$D/users.tsv --text_cache=/tmp/sci_bert_standin.safetensors
//   train_bench                     # synthetic 12,076 users x 20,825 items, text 7 x 256
//
// Figures belong here, never in unit tests (see trainer/README.md).
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <sstream>
#include <string>
#include <vector>

#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>  // before common/logging.h, which replaces its LOG

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "trainer/bench/core_balance.h"
#include "trainer/bench/host_cpu.h"
#include "trainer/data/demo_data.h"
#include "trainer/data/interactions.h"
#include "trainer/data/item_state_store.h"
#include "trainer/data/layer_selection.h"
#include "trainer/training/trainer.h"

#ifdef RECSYS_WITH_CUDA_RUNTIME
#include <c10/cuda/CUDACachingAllocator.h>
#endif

ABSL_FLAG(std::string, interactions, "",
          "users.tsv (with --text_cache; a path given must exist); empty: a synthetic set of "
          "Scientific's size under --scratch_dir");
ABSL_FLAG(std::string, text_cache, "", "text hidden-state cache (with --interactions)");
ABSL_FLAG(std::string, scratch_dir, "/tmp/recsys-train-bench", "where the synthetic set goes");
ABSL_FLAG(std::string, threads, "1,2",
          "thread counts to measure: N (N >= 2: the step split over N workers, each on one "
          "intra-op thread), Ni (N intra-op threads, the step not split) or Ns (the N shards "
          "of a split step one after another on one thread: the split's own cost) or Np (N "
          "independent 1-thread trainers at once, each its own model: what N cores give this "
          "work with nothing shared but the machine; ms_per_step is wall time / all steps); a \"u\" "
          "after any of them (1u, 2u, 2pu) runs the encoder blocks and side paths as LibTorch "
          "ops instead of the fused ones (model/nn/fused_block.h, fused_intra_path.h): the old "
          "path, side by side");
ABSL_FLAG(int, rounds, 1,
          "measure the --threads list this many times, interleaved (1,2,1,2,...); the report's "
          "\"threads_summary\" gives each entry's best and median and the ratios of the bests");
ABSL_FLAG(int, warmup_steps, 5, "steps before the timed ones");
ABSL_FLAG(int, steps, 60, "timed steps per thread count");
ABSL_FLAG(std::string, torch_profile, "",
          "also record LibTorch's profiler over each measurement but Np (warm-up "
          "included; it slows the step, so its figures are not the report's) into "
          "PREFIX<spec>_r<round>.json, a Chrome trace (chrome://tracing, Perfetto). It "
          "records the thread it starts on: for a split step (N >= 2) shard 0 and the serial "
          "part only; Ns runs every shard on that thread");
ABSL_FLAG(std::string, epoch_threads, "1",
          "thread counts at which a whole epoch + validation is also timed (empty: none)");
ABSL_FLAG(int, batch_size, 64, "training windows per step");
ABSL_FLAG(int, max_len, 10, "user-encoder input length");
ABSL_FLAG(uint64_t, seed, 42, "random seed");
ABSL_FLAG(std::string, device, "cpu", "cpu | cuda");
ABSL_FLAG(std::string, python, "/usr/bin/python3", "python with torch for the reference");
ABSL_FLAG(std::string, reference_script, "trainer/bench/reference_step.py",
          "the plain-PyTorch step (empty: skip)");
ABSL_FLAG(double, quiet_steal_percent, 2,
          "threads_summary's quiet rounds: those where the host's CPU steal (host_cpu in each "
          "measurement) stayed below this percent for the entry and the first --threads entry");
ABSL_FLAG(double, core_balance_seconds, 1,
          "CPU runs, after each round: how long two pinned threads do the same work at once, "
          "to report how evenly this machine runs two cores (core_balance in the report; 0: skip)");
ABSL_FLAG(std::string, label, "", "free text copied into the report (e.g. the commit)");
ABSL_FLAG(std::string, out, "", "also write the JSON report here");

namespace recsys {
namespace {

using Clock = std::chrono::steady_clock;

double ThreadCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double ProcessCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double LoadAverage1() {
  std::ifstream f("/proc/loadavg");
  double l = -1;
  f >> l;
  return l;
}

// Peak bytes the caching allocator handed out on CUDA device 0 (-1 without
// a CUDA build).
double PeakGpuMb() {
#ifdef RECSYS_WITH_CUDA_RUNTIME
  if (absl::GetFlag(FLAGS_device) != "cpu") {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
    return stats.allocated_bytes[0].peak / 1048576.0;
  }
#endif
  return -1;
}

// The host's steal and idle share between two /proc/stat readings (why
// not, where either failed).
nlohmann::json HostCpuJson(const absl::StatusOr<HostCpuTicks>& a,
                           const absl::StatusOr<HostCpuTicks>& b) {
  if (!a.ok()) return {{"unavailable", std::string(a.status().message())}};
  if (!b.ok()) return {{"unavailable", std::string(b.status().message())}};
  const HostCpuShare share = ShareBetween(*a, *b);
  return {{"steal_percent", share.steal_percent}, {"idle_percent", share.idle_percent}};
}

double PeakRssMb() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

nlohmann::json PhasesJson(const PhaseTimes& a, const PhaseTimes& b) {
  const double n = static_cast<double>(std::max<int64_t>(1, b.steps - a.steps));
  auto ms = [n](double x) { return 1000.0 * x / n; };
  nlohmann::json j;
  j["gather_ms"] = ms(b.gather - a.gather);
  j["side_forward_ms"] = ms(b.side_forward - a.side_forward);
  j["user_encoder_ms"] = ms(b.user_encoder - a.user_encoder);
  j["loss_ms"] = ms(b.loss - a.loss);
  j["backward_ms"] = ms(b.backward - a.backward);
  j["optimizer_ms"] = ms(b.optimizer - a.optimizer);
  j["sum_ms"] = ms((b.gather - a.gather) + (b.side_forward - a.side_forward) +
                   (b.user_encoder - a.user_encoder) + (b.loss - a.loss) +
                   (b.backward - a.backward) + (b.optimizer - a.optimizer));
  // The mean step's sizes (for the matmul floor).
  j["mean_items"] = (b.items - a.items) / n;
  j["mean_encoder_slots"] = (b.encoder_slots - a.encoder_slots) / n;
  j["mean_loss_positions"] = (b.loss_positions - a.loss_positions) / n;
  j["mean_candidates"] = (b.candidates - a.candidates) / n;
  return j;
}

// The matrix products of one training step at its mean sizes, timed with
// torch::mm on one thread (the BLAS the trainer uses, with LibTorch's
// per-call dispatch): what the step would take if it were nothing but its
// matmuls. Each product is timed in the forward's shape and in the two of
// its backward (dX = dY W, dW = dY^T X), at least 0.15 s each.
nlohmann::json MatmulFloor(const nlohmann::json& phases, int64_t blocks, int64_t hidden) {
  const TrainerOptions o;  // the model the bench trains (BaseOptions keeps these defaults)
  const int64_t U = std::llround(phases["mean_items"].get<double>());
  const int64_t S = std::llround(phases["mean_encoder_slots"].get<double>());
  const int64_t P = std::llround(phases["mean_loss_positions"].get<double>());
  const int64_t C = std::llround(phases["mean_candidates"].get<double>());
  const int64_t d = o.embedding_dim, bn = o.bottleneck, ffn = o.ffn_dim;
  struct Product {
    std::string what;
    int64_t rows, in, out, count;  // [rows, in] x [in, out], `count` times a step
  };
  const std::vector<Product> products = {
      {"side block down [U, hidden] x [hidden, bottleneck]", U, hidden, bn, blocks},
      {"side block up [U, bottleneck] x [bottleneck, hidden]", U, bn, hidden, blocks},
      {"item head [U, hidden] x [hidden, d]", U, hidden, d, 1},
      {"encoder qkv [slots, d] x [d, 3d]", S, d, 3 * d, o.num_layers},
      {"encoder out [slots, d] x [d, d]", S, d, d, o.num_layers},
      {"encoder ffn in [slots, d] x [d, ffn]", S, d, ffn, o.num_layers},
      {"encoder ffn out [slots, ffn] x [ffn, d]", S, ffn, d, o.num_layers},
      {"loss logits [positions, d] x [d, candidates]", P, d, C, 1},
  };
  torch::NoGradGuard no_grad;
  nlohmann::json rows = nlohmann::json::array();
  double floor_ms = 0, mflop = 0;
  for (const Product& p : products) {
    const torch::Tensor x = torch::randn({p.rows, p.in}), w = torch::randn({p.in, p.out});
    const torch::Tensor dy = torch::randn({p.rows, p.out});
    double ms_each = 0;
    // forward, dX, dW: the same multiply-adds each
    for (int shape = 0; shape < 3; ++shape) {
      auto once = [&] {
        if (shape == 0) return torch::mm(x, w);
        if (shape == 1) return torch::mm(dy, w.t());
        return torch::mm(x.t(), dy);
      };
      for (int i = 0; i < 3; ++i) once();  // warm
      int reps = 0;
      const Clock::time_point t0 = Clock::now();
      double secs = 0;
      while (secs < 0.15) {
        for (int i = 0; i < 10; ++i) once();
        reps += 10;
        secs = std::chrono::duration<double>(Clock::now() - t0).count();
      }
      ms_each += 1000.0 * secs / reps;
    }
    const double flop = 2.0 * p.rows * p.in * p.out * 3;
    rows.push_back({{"product", p.what},
                    {"shape", {p.rows, p.in, p.out}},
                    {"per_step", p.count},
                    {"gflops", flop / (ms_each / 1000.0) / 1e9},
                    {"ms_per_step", ms_each * p.count}});
    floor_ms += ms_each * p.count;
    mflop += flop * p.count / 1e6;
  }
  return {{"products", rows}, {"mflop_per_step", mflop}, {"ms_per_step", floor_ms},
          {"sizes", {{"items", U}, {"encoder_slots", S}, {"loss_positions", P},
                     {"candidates", C}}}};
}

struct Data {
  std::string interactions, text_cache, source;
};

absl::StatusOr<Data> PrepareData() {
  Data d;
  d.interactions = absl::GetFlag(FLAGS_interactions);
  d.text_cache = absl::GetFlag(FLAGS_text_cache);
  // A path given but absent is an error, not a quiet switch to the
  // synthetic set (a report of the wrong data looks like the right one).
  if (d.interactions.empty() != d.text_cache.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--interactions and --text_cache go together (both, or neither for the synthetic set); "
        "got only ", d.interactions.empty() ? "--text_cache" : "--interactions"));
  }
  if (!d.interactions.empty()) {
    for (const auto& [flag, path] : {std::pair<const char*, const std::string&>{
                                         "--interactions", d.interactions},
                                     {"--text_cache", d.text_cache}}) {
      if (!PathExists(path)) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, ": no such file \"", path.substr(0, 200), "\""));
      }
    }
    d.source = "given";
    return d;
  }
  // Scientific's size: 12,076 users, 20,825 items, sequences 5.. (median 6),
  // a 7-state x 256 text cache (the stand-in BERT 6 x 256).
  DemoDataOptions o;
  o.num_items = 20825;
  o.num_users = 12076;
  o.min_sequence_length = 5;
  o.max_sequence_length = 9;
  o.text_states = 7;
  o.text_hidden = 256;
  o.image_states = 1;  // unused by the bench; kept tiny
  o.image_hidden = 4;
  o.seed = 7;
  const std::string dir = absl::GetFlag(FLAGS_scratch_dir);
  d.interactions = JoinPath(dir, "users.tsv");
  d.text_cache = JoinPath(dir, "text_states.safetensors");
  if (!PathExists(d.interactions) || !PathExists(d.text_cache)) {
    RETURN_IF_ERROR(WriteDemoData(GenerateDemoData(o), o, dir));
  }
  d.source = "synthetic (12076 users x 20825 items, text 7 x 256)";
  return d;
}

TrainerOptions BaseOptions() {
  TrainerOptions o;
  o.model = "iisan";
  o.device = absl::GetFlag(FLAGS_device);
  o.batch_size = absl::GetFlag(FLAGS_batch_size);
  o.max_len = absl::GetFlag(FLAGS_max_len);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.epochs = 1;
  o.time_phases = true;
  o.log_interval = absl::Hours(1);
  return o;
}

// An epoch shorter than --warmup_steps + --steps never reaches the end
// mark: an error naming both, not a negative time.
absl::Status CheckTimedStepsRan(bool ran, int64_t epoch_steps) {
  if (ran) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--warmup_steps=", absl::GetFlag(FLAGS_warmup_steps), " + --steps=",
      absl::GetFlag(FLAGS_steps), " need that many steps in one epoch; this set's epoch has ",
      epoch_steps, " at --batch_size=", absl::GetFlag(FLAGS_batch_size),
      ": lower --steps, or use --rounds for more measurements"));
}

// Timed steps at `threads`: steps/s over the steps after the warm-up, and
// the phases of those steps.
struct ThreadSpec {
  int threads = 1;
  bool shard_steps = true;  // false: "Ni", intra-op threads
  bool serial = false;      // "Ns": the shards in turn on one thread
  bool independent = false; // "Np": N separate 1-thread trainers at once
  bool fused_kernels = true;  // false: "...u", LibTorch ops instead of fused kernels
  std::string label;
};

// "Np": N trainers (1 thread each, the same options and data, each its own
// model) training at once on N threads. They start their timed steps
// together (a barrier after the warm-up); ms_per_step is the wall time from
// that start to the last one's end over all N x steps timed steps, so that
// 1000 / ms_per_step is the steps/s the N cores delivered together.
absl::StatusOr<nlohmann::json> MeasureIndependent(const InteractionData& data,
                                                  const ItemStateStore& store,
                                                  const ThreadSpec& t) {
  const int n = t.threads;
  const int warmup = absl::GetFlag(FLAGS_warmup_steps);
  const int steps = absl::GetFlag(FLAGS_steps);
  // The barrier after the warm-up (std::, not absl::: the GPU machine's
  // CMake build has only a thin Abseil shim).
  std::mutex mu;
  std::condition_variable opened;
  int arrived = 0;
  Clock::time_point start;
  std::vector<Clock::time_point> end(n);
  std::vector<absl::Status> status(n);
  std::vector<double> loss(n, 0);
  std::vector<std::unique_ptr<Trainer>> trainers(n);
  std::atomic<int64_t> epoch_steps{0};
  int finished = 0;  // trainers past their timed steps (under mu)
  absl::StatusOr<HostCpuTicks> host0 = absl::UnknownError("not read"), host1 = host0;
  for (int i = 0; i < n; ++i) {
    TrainerOptions o = BaseOptions();
    o.num_threads = 1;
    o.fused_kernels = t.fused_kernels;
    o.max_steps_per_epoch = warmup + steps;
    o.on_progress = [&, i](const TrainProgress& p) {
      if (p.finished_epoch != nullptr) return absl::OkStatus();
      epoch_steps = p.steps;
      if (p.step == warmup) {
        std::unique_lock<std::mutex> lock(mu);
        if (++arrived == n) {
          start = Clock::now();
          host0 = ReadHostCpuTicks();
          opened.notify_all();
        }
        opened.wait(lock, [&] { return arrived >= n; });
      }
      if (p.step == warmup + steps) {
        end[i] = Clock::now();
        std::lock_guard<std::mutex> lock(mu);
        if (++finished == n) host1 = ReadHostCpuTicks();
      }
      return absl::OkStatus();
    };
    ASSIGN_OR_RETURN(trainers[i], Trainer::Create(o, &data, &store));
  }
  const double load_before = LoadAverage1();
  const double proc_cpu0 = ProcessCpuSeconds();
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<double> l = trainers[i]->TrainEpoch(1);
      if (l.ok()) {
        loss[i] = *l;
      } else {
        status[i] = l.status();
        std::lock_guard<std::mutex> lock(mu);
        arrived = n;  // a failed trainer must not hold the others at the barrier
        opened.notify_all();
      }
    });
  }
  for (auto& th : threads) th.join();
  const double proc_cpu1 = ProcessCpuSeconds();
  for (const absl::Status& s : status) RETURN_IF_ERROR(s);
  for (const Clock::time_point& e : end) {
    RETURN_IF_ERROR(CheckTimedStepsRan(e != Clock::time_point(), epoch_steps));
  }
  Clock::time_point last = start;
  nlohmann::json each = nlohmann::json::array();
  for (int i = 0; i < n; ++i) {
    last = std::max(last, end[i]);
    each.push_back(1000.0 * std::chrono::duration<double>(end[i] - start).count() / steps);
  }
  const double secs = std::chrono::duration<double>(last - start).count();
  nlohmann::json j;
  j["threads"] = n;
  j["spec"] = t.label;
  j["fused_kernels"] = t.fused_kernels;
  j["independent_trainers"] = n;
  j["timed_steps"] = steps;
  j["steps_per_second"] = n * steps / secs;
  j["ms_per_step"] = 1000.0 * secs / (n * steps);
  j["ms_per_step_of_each"] = each;  // each trainer's own wall time per step
  double mean_loss = 0;
  for (double l : loss) mean_loss += l / n;
  j["mean_loss"] = mean_loss;
  j["load_average_1m"] = {load_before, LoadAverage1()};
  j["host_cpu"] = HostCpuJson(host0, host1);  // from the barrier to the last timed step
  j["process_cpu_ms_per_step"] = 1000.0 * (proc_cpu1 - proc_cpu0) / (n * (warmup + steps));
  return j;
}

absl::StatusOr<nlohmann::json> MeasureSteps(const InteractionData& data,
                                            const ItemStateStore& store, const ThreadSpec& t,
                                            const std::string& profile_path) {
  const int threads = t.threads;
  const int warmup = absl::GetFlag(FLAGS_warmup_steps);
  const int steps = absl::GetFlag(FLAGS_steps);
  int64_t epoch_steps = 0;
  TrainerOptions o = BaseOptions();
  o.num_threads = threads;
  o.shard_steps = t.shard_steps;
  o.serial_shards = t.serial;
  o.fused_kernels = t.fused_kernels;
  o.max_steps_per_epoch = warmup + steps;
  Clock::time_point t0, t1;
  PhaseTimes p0, p1;
  double main_cpu0 = 0, main_cpu1 = 0, proc_cpu0 = 0, proc_cpu1 = 0;
  absl::StatusOr<HostCpuTicks> host0 = absl::UnknownError("not read"), host1 = host0;
  const Trainer* self = nullptr;
  // on_progress runs on the training thread: its CPU clock is the caller's.
  o.on_progress = [&](const TrainProgress& p) {
    if (p.finished_epoch != nullptr) return absl::OkStatus();
    epoch_steps = p.steps;
    if (p.step == warmup) {
      t0 = Clock::now();
      p0 = self->phase_times();
      main_cpu0 = ThreadCpuSeconds();
      proc_cpu0 = ProcessCpuSeconds();
      host0 = ReadHostCpuTicks();
    }
    if (p.step == warmup + steps) {
      t1 = Clock::now();
      p1 = self->phase_times();
      main_cpu1 = ThreadCpuSeconds();
      proc_cpu1 = ProcessCpuSeconds();
      host1 = ReadHostCpuTicks();
    }
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer, Trainer::Create(o, &data, &store));
  self = trainer.get();
  const double load_before = LoadAverage1();
  double loss = 0;
  if (profile_path.empty()) {
    ASSIGN_OR_RETURN(loss, trainer->TrainEpoch(1));
  } else {
    std::ofstream profile_file(profile_path);
    if (!profile_file) {
      return absl::InvalidArgumentError(
          absl::StrCat("--torch_profile: cannot write \"", profile_path, "\""));
    }
    {
      torch::autograd::profiler::RecordProfile profile(profile_file);
      ASSIGN_OR_RETURN(loss, trainer->TrainEpoch(1));
    }  // the trace is written here
    if (!profile_file.flush()) {
      return absl::InternalError(
          absl::StrCat("--torch_profile: writing \"", profile_path, "\" failed"));
    }
  }
  RETURN_IF_ERROR(CheckTimedStepsRan(t1 != Clock::time_point(), epoch_steps));
  const double secs = std::chrono::duration<double>(t1 - t0).count();
  nlohmann::json j;
  j["threads"] = threads;
  j["spec"] = t.label;
  j["shards"] = trainer->phase_times().shards;  // workers a step ran on (1: not split)
  j["intra_op_threads"] = t.shard_steps && threads >= 2 ? 1 : threads;
  j["serial_shards"] = t.serial;
  j["fused_kernels"] = t.fused_kernels;
  j["timed_steps"] = steps;
  j["steps_per_second"] = steps / secs;
  j["ms_per_step"] = 1000.0 * secs / steps;
  j["mean_loss"] = loss;
  j["phases"] = PhasesJson(p0, trainer->phase_times());
  j["load_average_1m"] = {load_before, LoadAverage1()};
  j["host_cpu"] = HostCpuJson(host0, host1);  // over the timed steps
  // CPU time per step (not wall): the whole process, the training thread.
  // For split steps, the projection for an idle machine: the training
  // thread's work outside its own shards (serial) plus, per parallel
  // phase, the busiest shard's CPU time. It leaves out the wake-ups at the
  // phase boundaries and memory-bandwidth sharing.
  const double per = 1000.0 / steps;
  j["process_cpu_ms_per_step"] = per * (proc_cpu1 - proc_cpu0);
  j["main_thread_cpu_ms_per_step"] = per * (main_cpu1 - main_cpu0);
  if (p1.shards > 1 && !t.serial) {
    const double serial = (main_cpu1 - main_cpu0) - (p1.shard0_cpu - p0.shard0_cpu);
    const double critical = p1.critical_cpu - p0.critical_cpu;
    j["serial_cpu_ms_per_step"] = per * serial;
    j["parallel_cpu_ms_per_step"] = per * (p1.shard_cpu - p0.shard_cpu);
    j["critical_cpu_ms_per_step"] = per * critical;
    j["projected_idle_ms_per_step"] = per * (serial + critical);
  }
  return j;
}

// A whole epoch and one validation pass at `threads`.
absl::StatusOr<nlohmann::json> MeasureEpoch(const InteractionData& data,
                                            const ItemStateStore& store, int threads) {
  TrainerOptions o = BaseOptions();
  o.num_threads = threads;
  ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer, Trainer::Create(o, &data, &store));
  const double load_before = LoadAverage1();
  const absl::StatusOr<HostCpuTicks> host0 = ReadHostCpuTicks();
  const Clock::time_point t0 = Clock::now();
  ASSIGN_OR_RETURN(double loss, trainer->TrainEpoch(1));
  const Clock::time_point t1 = Clock::now();
  const PhaseTimes after_train = trainer->phase_times();
  ASSIGN_OR_RETURN(RankingReport valid, trainer->Evaluate(trainer->split().validation));
  const Clock::time_point t2 = Clock::now();
  const int64_t steps = after_train.steps;
  nlohmann::json j;
  j["threads"] = threads;
  j["steps"] = steps;
  j["train_seconds"] = std::chrono::duration<double>(t1 - t0).count();
  j["steps_per_second"] = steps / std::chrono::duration<double>(t1 - t0).count();
  j["validation_seconds"] = std::chrono::duration<double>(t2 - t1).count();
  j["epoch_seconds_with_validation"] = std::chrono::duration<double>(t2 - t0).count();
  j["loss"] = loss;
  j["validation_hr10"] = valid.hr(10);
  j["validation_ndcg10"] = valid.ndcg_at(10);
  j["phases"] = PhasesJson(PhaseTimes{}, after_train);
  j["load_average_1m"] = {load_before, LoadAverage1()};
  j["host_cpu"] = HostCpuJson(host0, ReadHostCpuTicks());  // training and validation
  return j;
}

// Runs the plain-PyTorch reference at `threads`; its JSON line, or why not.
nlohmann::json RunReference(const Data& d, int threads) {
  const std::string script = absl::GetFlag(FLAGS_reference_script);
  if (script.empty()) return {{"skipped", "--reference_script is empty"}};
  if (!PathExists(script)) return {{"skipped", absl::StrCat(script, " not found")}};
  const std::string py = absl::GetFlag(FLAGS_python);
  const std::string cmd = absl::StrCat(
      py, " ", script, " --interactions=", d.interactions, " --text_cache=", d.text_cache,
      " --threads=", threads, " --warmup_steps=", absl::GetFlag(FLAGS_warmup_steps),
      " --steps=", absl::GetFlag(FLAGS_steps), " --batch_size=", absl::GetFlag(FLAGS_batch_size),
      " --max_len=", absl::GetFlag(FLAGS_max_len), " --seed=", absl::GetFlag(FLAGS_seed),
      " 2>&1");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return {{"skipped", "could not start " + py}};
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  const int rc = pclose(pipe);
  std::string last;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipWhitespace())) {
    last = std::string(line);
  }
  if (rc != 0) return {{"skipped", absl::StrCat(py, " failed (", rc, "): ", last.substr(0, 300))}};
  try {
    return nlohmann::json::parse(last);
  } catch (const nlohmann::json::exception&) {
    return {{"skipped", "unparsable output: " + last.substr(0, 300)}};
  }
}

std::vector<int> ParseThreads(const std::string& s) {
  std::vector<int> out;
  for (absl::string_view p : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
    int n = 0;
    if (absl::SimpleAtoi(p, &n) && n > 0) out.push_back(n);
  }
  return out;
}

absl::StatusOr<std::vector<ThreadSpec>> ParseThreadSpecs(const std::string& s) {
  std::vector<ThreadSpec> out;
  for (absl::string_view p : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
    ThreadSpec t;
    t.label = std::string(p);
    if (absl::EndsWith(p, "u")) {
      t.fused_kernels = false;
      p.remove_suffix(1);
    }
    if (absl::EndsWith(p, "i")) {
      t.shard_steps = false;
      p.remove_suffix(1);
    } else if (absl::EndsWith(p, "s")) {
      t.serial = true;
      p.remove_suffix(1);
    } else if (absl::EndsWith(p, "p")) {
      t.independent = true;
      p.remove_suffix(1);
    }
    if (!absl::SimpleAtoi(p, &t.threads) || t.threads < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--threads: \"", t.label, "\" is not N, Ni, Ns or Np with N >= 1, each optionally followed by u"));
    }
    out.push_back(t);
  }
  return out;
}

// MeasureCoreBalance as JSON; {"skipped": why} where it cannot run.
nlohmann::json CoreBalanceJson(double seconds) {
  const absl::StatusOr<HostCpuTicks> host0 = ReadHostCpuTicks();
  absl::StatusOr<CoreBalance> b = MeasureCoreBalance(seconds);
  if (!b.ok()) return {{"skipped", std::string(b.status().message())}};
  return {{"cpus", b->cpus},
          {"host_cpu", HostCpuJson(host0, ReadHostCpuTicks())},
          {"seconds", seconds},
          {"window_ms", b->window_ms},
          {"windows", b->windows},
          {"alone_units_per_s", b->alone_units_per_s},
          {"both_units_per_s", {b->both_units_per_s[0], b->both_units_per_s[1]}},
          {"parallel_ceiling", b->parallel_ceiling},
          {"barrier_split_ceiling", b->barrier_split_ceiling},
          {"faster_over_slower",
           {{"median", b->faster_over_slower_median},
            {"p90", b->faster_over_slower_p90},
            {"max", b->faster_over_slower_max},
            {"windows_over_10_percent", b->windows_over_10_percent}}}};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

// A measurement's host steal percent; -1 where it is unknown.
double StealPercent(const nlohmann::json& step) {
  if (!step.contains("host_cpu") || !step["host_cpu"].contains("steal_percent")) return -1;
  return step["host_cpu"]["steal_percent"].get<double>();
}

// Per --threads entry over the rounds: ms/step best, median, all, the host's
// steal per round; each entry's best and per-round ratios against the first
// entry (steps/s of the entry / steps/s of the first); and the median ratio
// over the quiet rounds, where the steal of both stayed known and below
// `quiet_steal_percent`.
nlohmann::json ThreadsSummary(const std::vector<ThreadSpec>& specs, const nlohmann::json& steps,
                              double quiet_steal_percent) {
  nlohmann::json out = nlohmann::json::object();
  const size_t n = specs.size();
  std::vector<std::vector<double>> ms(n), steal(n);
  for (size_t i = 0; i < steps.size(); ++i) {
    ms[i % n].push_back(steps[i]["ms_per_step"]);
    steal[i % n].push_back(StealPercent(steps[i]));
  }
  const auto quiet = [&](size_t k, size_t r) {
    return steal[k][r] >= 0 && steal[k][r] < quiet_steal_percent;
  };
  for (size_t k = 0; k < n; ++k) {
    nlohmann::json e;
    e["ms_per_step_best"] = *std::min_element(ms[k].begin(), ms[k].end());
    e["ms_per_step_median"] = Median(ms[k]);
    e["ms_per_step_all"] = ms[k];
    e["speedup_of_bests_vs_" + specs[0].label] =
        *std::min_element(ms[0].begin(), ms[0].end()) / e["ms_per_step_best"].get<double>();
    std::vector<double> ratios;
    for (size_t r = 0; r < ms[k].size(); ++r) ratios.push_back(ms[0][r] / ms[k][r]);
    e["speedup_per_round_vs_" + specs[0].label] = ratios;
    e["host_steal_percent_all"] = steal[k];
    std::vector<double> quiet_ratios;
    for (size_t r = 0; r < ratios.size(); ++r) {
      if (quiet(0, r) && quiet(k, r)) quiet_ratios.push_back(ratios[r]);
    }
    e["quiet_rounds"] = quiet_ratios.size();
    if (!quiet_ratios.empty()) {
      e["speedup_median_quiet_rounds_vs_" + specs[0].label] = Median(quiet_ratios);
    }
    out[specs[k].label] = e;
  }
  return out;
}

absl::Status Run() {
  if (absl::GetFlag(FLAGS_warmup_steps) < 1 || absl::GetFlag(FLAGS_steps) < 1) {
    // The timed window opens when step `warmup` reports (steps count from 1).
    return absl::InvalidArgumentError(absl::StrCat(
        "--warmup_steps and --steps must be at least 1; got ", absl::GetFlag(FLAGS_warmup_steps),
        " and ", absl::GetFlag(FLAGS_steps)));
  }
  const double balance_seconds = absl::GetFlag(FLAGS_core_balance_seconds);
  if (!(balance_seconds >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--core_balance_seconds must be >= 0 (0: skip); got ", balance_seconds));
  }
  if (balance_seconds > 0) {
    // Refused now, not reported as skipped after the whole run.
    if (absl::Status s = CheckCoreBalanceArgs(balance_seconds); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--core_balance_seconds: ", s.message()));
    }
  }
  if (!(absl::GetFlag(FLAGS_quiet_steal_percent) >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--quiet_steal_percent must be >= 0; got ", absl::GetFlag(FLAGS_quiet_steal_percent)));
  }
  ASSIGN_OR_RETURN(Data d, PrepareData());
  ASSIGN_OR_RETURN(InteractionData data, LoadInteractions(d.interactions));
  ItemStateStore::Options so;
  so.cache_paths = {d.text_cache};
  so.layers.mode = LayerMode::kEverySecond;
  so.standardize = true;
  const Clock::time_point s0 = Clock::now();
  ASSIGN_OR_RETURN(std::unique_ptr<ItemStateStore> store,
                   ItemStateStore::Create(so, data.item_keys));
  const double open_seconds = std::chrono::duration<double>(Clock::now() - s0).count();

  nlohmann::json report;
  report["label"] = absl::GetFlag(FLAGS_label);
  report["data"] = {{"source", d.source}, {"interactions", d.interactions},
                    {"text_cache", d.text_cache}, {"users", data.num_users()},
                    {"items", data.num_items()},
                    {"blocks", store->num_blocks(0)}, {"hidden", store->hidden_size(0)}};
  report["settings"] = {{"batch_size", absl::GetFlag(FLAGS_batch_size)},
                        {"max_len", absl::GetFlag(FLAGS_max_len)},
                        {"warmup_steps", absl::GetFlag(FLAGS_warmup_steps)},
                        {"timed_steps", absl::GetFlag(FLAGS_steps)},
                        {"rounds", absl::GetFlag(FLAGS_rounds)},
                        {"device", absl::GetFlag(FLAGS_device)},
                        {"standardize_states", true}, {"layer_mode", "every_second"}};
  report["store_open_seconds"] = open_seconds;
  nlohmann::json steps = nlohmann::json::array(), epochs = nlohmann::json::array(),
                 reference = nlohmann::json::array();
  ASSIGN_OR_RETURN(std::vector<ThreadSpec> specs, ParseThreadSpecs(absl::GetFlag(FLAGS_threads)));
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  // One probe after each round: the host's state changes within seconds.
  const bool probe = absl::GetFlag(FLAGS_device) == "cpu" && balance_seconds > 0 && !specs.empty();
  nlohmann::json balance = nlohmann::json::array();
  for (int round = 0; round < rounds; ++round) {
    for (const ThreadSpec& t : specs) {
      const std::string profile =
          absl::GetFlag(FLAGS_torch_profile).empty() || t.independent
              ? ""
              : absl::StrCat(absl::GetFlag(FLAGS_torch_profile), t.label, "_r", round + 1, ".json");
      ASSIGN_OR_RETURN(nlohmann::json j, t.independent ? MeasureIndependent(data, *store, t)
                                                       : MeasureSteps(data, *store, t, profile));
      j["round"] = round + 1;
      LOG(INFO) << "threads " << t.label << ": " << j.dump();
      steps.push_back(j);
      if (round == 0) {
        nlohmann::json r = RunReference(d, t.threads);
        LOG(INFO) << "pytorch reference, threads " << t.threads << ": " << r.dump();
        reference.push_back(r);
      }
    }
    if (probe) {
      nlohmann::json b = CoreBalanceJson(balance_seconds);
      b["round"] = round + 1;
      LOG(INFO) << "core balance: " << b.dump();
      balance.push_back(b);
    }
  }
  if (!specs.empty()) {
    report["threads_summary"] =
        ThreadsSummary(specs, steps, absl::GetFlag(FLAGS_quiet_steal_percent));
  }
  if (!balance.empty()) report["core_balance"] = balance;
  for (const nlohmann::json& j : steps) {
    if (j.contains("phases") && j["threads"] == 1 && absl::GetFlag(FLAGS_device) == "cpu") {
      report["matmul_floor_1_thread"] =
          MatmulFloor(j["phases"], store->num_blocks(0), store->hidden_size(0));
      break;
    }
  }
  for (int t : ParseThreads(absl::GetFlag(FLAGS_epoch_threads))) {
    ASSIGN_OR_RETURN(nlohmann::json j, MeasureEpoch(data, *store, t));
    LOG(INFO) << "epoch, threads " << t << ": " << j.dump();
    epochs.push_back(j);
  }
  report["steps"] = steps;
  report["epoch"] = epochs;
  report["pytorch_reference"] = reference;
  report["peak_rss_mb"] = PeakRssMb();
  report["peak_gpu_allocated_mb"] = PeakGpuMb();  // -1: not a CUDA run
  const std::string text = report.dump();
  std::cout << text << std::endl;
  const std::string out = absl::GetFlag(FLAGS_out);
  if (!out.empty()) {
    std::ofstream f(out);
    f << text << "\n";
    if (!f) return absl::InternalError(absl::StrCat("could not write ", out));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace recsys

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(argc, argv,
                                   "train_bench: the trainer's steps/s, epoch time and phases");
  absl::Status s = recsys::Run();
  if (!s.ok()) {
    std::cerr << "train_bench: " << s << std::endl;
    return 1;
  }
  return 0;
}
