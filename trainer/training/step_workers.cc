#include "trainer/training/step_workers.h"

#include <time.h>

#include <algorithm>

namespace recsys {
namespace {

double ThreadCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace

StepWorkers::StepWorkers(int shards, bool serial)
    : shards_(shards < 1 ? 1 : shards), serial_(serial) {
  errors_.resize(shards_);
  run_cpu_.assign(shards_, 0.0);
  cpu_.per_shard.assign(shards_, 0.0);
  if (serial_) return;
  for (int s = 1; s < shards_; ++s) threads_.emplace_back([this, s] { WorkerLoop(s); });
}

StepWorkers::~StepWorkers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void StepWorkers::WorkerLoop(int shard) {
  int64_t seen = 0;
  while (true) {
    const std::function<void(int)>* task = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      task = task_;
    }
    std::exception_ptr error;
    const double cpu0 = ThreadCpuSeconds();
    try {
      (*task)(shard);
    } catch (...) {
      error = std::current_exception();
    }
    const double cpu = ThreadCpuSeconds() - cpu0;
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      errors_[shard] = error;
      run_cpu_[shard] = cpu;
      last = --pending_ == 0;
    }
    if (last) done_.notify_one();
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    task_ = &fn;
    pending_ = shards_ - 1;
    ++generation_;
  }
  work_.notify_all();
  std::exception_ptr own;
  const double cpu0 = ThreadCpuSeconds();
  try {
    fn(0);
  } catch (...) {
    own = std::current_exception();
  }
  const double own_cpu = ThreadCpuSeconds() - cpu0;
  std::vector<std::exception_ptr> errors;
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return pending_ == 0; });
    task_ = nullptr;
    errors.swap(errors_);
    errors_.resize(shards_);
    run_cpu_[0] = own_cpu;
    double busiest = 0;
    for (int sh = 0; sh < shards_; ++sh) {
      cpu_.per_shard[sh] += run_cpu_[sh];
      busiest = std::max(busiest, run_cpu_[sh]);
    }
    cpu_.critical += busiest;
  }
  if (own) std::rethrow_exception(own);
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace recsys
