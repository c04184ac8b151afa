// A persistent team of threads that runs one function on N shards at once:
// shard 0 on the calling thread, shards 1..N-1 on N-1 workers started once
// (no thread is created per step).
//
// Hand-offs: a worker that finishes a shard watches for the next call for
// a bounded time (`spin_us`, pausing and yielding the core to any other
// runnable thread as it watches), then sleeps on a condition variable; the
// caller watches for the workers' ends the same way before it sleeps. Why:
// waking a sleeping thread on another core took ~65 us per call here (a
// Run() of empty shards on 2 threads: 52-69 us sleeping, 1.4-1.9 us watching),
// and a training step makes four calls a few hundred microseconds apart.
// Bounded, so an idle team (between epochs, in evaluation's serial parts,
// a trainer waiting for its next job) sleeps and takes no core.
//
// Used by the trainer to split a CPU training step into shards (see
// trainer.cc, "sharded step"); knows nothing of LibTorch.
//
// Thread-safety: Run() is called from one thread at a time (the owner's);
// it returns when every shard has finished. An exception thrown by a shard
// is rethrown by Run() on the calling thread after all shards have ended
// (the lowest shard's, if several threw).
#ifndef RECSYS_TRAINER_TRAINING_STEP_WORKERS_H_
#define RECSYS_TRAINER_TRAINING_STEP_WORKERS_H_

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include <condition_variable>
#include <mutex>

namespace recsys {

class StepWorkers {
 public:
  // REQUIRES: shards >= 1 (1: Run() calls the function inline, no thread).
  // `serial` (for measurements): no threads; Run() calls the shards one
  // after another on the caller, so the split's own cost can be told apart
  // from what running in parallel costs.
  // `spin_us`: how long a worker (and the caller) watches before it sleeps;
  // 0: sleep at once.
  explicit StepWorkers(int shards, bool serial = false, int spin_us = kDefaultSpinMicros);
  static constexpr int kDefaultSpinMicros = 300;
  ~StepWorkers();
  StepWorkers(const StepWorkers&) = delete;
  StepWorkers& operator=(const StepWorkers&) = delete;

  int shards() const { return shards_; }
  // Calls fn(0) .. fn(shards - 1) concurrently; returns when all are done.
  void Run(const std::function<void(int)>& fn);

  // CPU time (the threads' own, CLOCK_THREAD_CPUTIME_ID) spent in the
  // shards since construction: per shard, and summed over Run() calls of
  // the busiest shard's time (the critical path if every shard had a core
  // of its own). Read by the owner between Run() calls.
  struct CpuTimes {
    std::vector<double> per_shard;
    double critical = 0;
  };
  const CpuTimes& cpu_times() const { return cpu_; }

 private:
  void WorkerLoop(int shard);

  // std::mutex + condition variables rather than absl::Mutex::Await: the
  // CMake build for the GPU machine (trainer/gpu) has only a thin Abseil
  // shim without Await. A call is published by task_ then generation_
  // (release); a worker's end by errors_[s] and run_cpu_[s] then pending_
  // (release). mu_ guards the sleeping: sleepers_, and the condition
  // variables' waits (a notifier takes mu_ after its atomic store, so no
  // wake-up is lost).
  const int shards_;
  const bool serial_;
  const int spin_us_;
  std::mutex mu_;
  std::condition_variable work_;  // a new generation, or stop
  std::condition_variable done_;  // pending_ reached 0
  const std::function<void(int)>* task_ = nullptr;
  std::atomic<int64_t> generation_{0};  // one per Run()
  std::atomic<int> pending_{0};         // workers still running it
  std::atomic<bool> stop_{false};
  int sleepers_ = 0;                    // workers waiting on work_
  std::vector<std::exception_ptr> errors_;  // per shard
  std::vector<double> run_cpu_;             // per shard, this Run()
  CpuTimes cpu_;                            // owner's thread only
  std::vector<std::thread> threads_;
};

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_STEP_WORKERS_H_
