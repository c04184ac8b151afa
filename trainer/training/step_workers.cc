#include "trainer/training/step_workers.h"

namespace recsys {

StepWorkers::StepWorkers(int shards) : shards_(shards < 1 ? 1 : shards) {
  errors_.resize(shards_);
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
    try {
      (*task)(shard);
    } catch (...) {
      error = std::current_exception();
    }
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      errors_[shard] = error;
      last = --pending_ == 0;
    }
    if (last) done_.notify_one();
  }
}

void StepWorkers::Run(const std::function<void(int)>& fn) {
  if (shards_ == 1) {
    fn(0);
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
  try {
    fn(0);
  } catch (...) {
    own = std::current_exception();
  }
  std::vector<std::exception_ptr> errors;
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return pending_ == 0; });
    task_ = nullptr;
    errors.swap(errors_);
    errors_.resize(shards_);
  }
  if (own) std::rethrow_exception(own);
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace recsys
