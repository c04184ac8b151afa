#include "trainer/training/step_workers.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace recsys {
namespace {

double ThreadCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Watches `done` for up to `spin_us` microseconds: true as soon as it
// holds, false when the time is up. Every 64 checks it reads the clock and
// yields, so another runnable thread on this core (the next batch's
// builder) is not starved by the watching.
template <typename Done>
bool WatchFor(int spin_us, const Done& done) {
  if (done()) return true;
  if (spin_us <= 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us);
  for (int i = 1;; ++i) {
    CpuRelax();
    if (done()) return true;
    if ((i & 63) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::yield();
    }
  }
}

}  // namespace

StepWorkers::StepWorkers(int shards, bool serial, int spin_us)
    : shards_(shards < 1 ? 1 : shards), serial_(serial), spin_us_(spin_us) {
  errors_.resize(shards_);
  run_cpu_.assign(shards_, 0.0);
  cpu_.per_shard.assign(shards_, 0.0);
  if (serial_) return;
  for (int s = 1; s < shards_; ++s) threads_.emplace_back([this, s] { WorkerLoop(s); });
}

StepWorkers::~StepWorkers() {
  stop_.store(true, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
  }
  work_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void StepWorkers::WorkerLoop(int shard) {
  int64_t seen = 0;
  auto called = [&] {
    return stop_.load(std::memory_order_acquire) ||
           generation_.load(std::memory_order_acquire) != seen;
  };
  while (true) {
    if (!WatchFor(spin_us_, called)) {
      std::unique_lock<std::mutex> lock(mu_);
      ++sleepers_;
      work_.wait(lock, called);
      --sleepers_;
    }
    if (stop_.load(std::memory_order_acquire)) return;
    // The caller waits for this shard before it can start another call, so
    // the generation read here is the one `called` saw, and task_ its task.
    seen = generation_.load(std::memory_order_acquire);
    const std::function<void(int)>* task = task_;
    std::exception_ptr error;
    const double cpu0 = ThreadCpuSeconds();
    try {
      (*task)(shard);
    } catch (...) {
      error = std::current_exception();
    }
    errors_[shard] = error;
    run_cpu_[shard] = ThreadCpuSeconds() - cpu0;
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      {
        std::lock_guard<std::mutex> lock(mu_);
      }
      done_.notify_one();
    }
  }
}

void StepWorkers::Run(const std::function<void(int)>& fn) {
  if (shards_ == 1 || serial_) {
    double busiest = 0;
    for (int sh = 0; sh < shards_; ++sh) {
      const double cpu0 = ThreadCpuSeconds();
      fn(sh);
      const double cpu = ThreadCpuSeconds() - cpu0;
      cpu_.per_shard[sh] += cpu;
      busiest = std::max(busiest, cpu);
    }
    cpu_.critical += busiest;
    return;
  }
  task_ = &fn;
  pending_.store(shards_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake = sleepers_ > 0;
  }
  if (wake) work_.notify_all();
  std::exception_ptr own;
  const double cpu0 = ThreadCpuSeconds();
  try {
    fn(0);
  } catch (...) {
    own = std::current_exception();
  }
  run_cpu_[0] = ThreadCpuSeconds() - cpu0;
  auto finished = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!WatchFor(spin_us_, finished)) {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, finished);
  }
  task_ = nullptr;
  std::vector<std::exception_ptr> errors;
  errors.swap(errors_);
  errors_.resize(shards_);
  double busiest = 0;
  for (int sh = 0; sh < shards_; ++sh) {
    cpu_.per_shard[sh] += run_cpu_[sh];
    busiest = std::max(busiest, run_cpu_[sh]);
  }
  cpu_.critical += busiest;
  if (own) std::rethrow_exception(own);
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace recsys
