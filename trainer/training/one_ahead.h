// Builds a sequence of values (the trainer's batches) on a thread of its
// own, one ahead of the caller: Start(k) begins value k, Take() returns it.
// One thread for the object's lifetime (the trainer makes one per epoch,
// not one per step); it sleeps between values.
//
// The thread runs at the lowest priority (nice 19, Linux): woken at normal
// priority it preempted the thread that woke it, a training step's own
// caller (11-60 us a step on 2 cores here, 6-10 us at nice 19). Take()
// builds the value itself when the thread has not started on it, so a
// helper starved on a busy machine never stalls the caller for long.
//
// Thread-safety: Start() and Take() are called from one thread, in turn
// (Start, Take, Start, Take, ...). `make` runs on either thread, never on
// both at once, so it may keep scratch state between calls.
#ifndef RECSYS_TRAINER_TRAINING_ONE_AHEAD_H_
#define RECSYS_TRAINER_TRAINING_ONE_AHEAD_H_

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace recsys {

// Lowers the calling thread's priority to nice 19 (no-op off Linux).
void LowerThisThreadsPriority();

template <typename T>
class OneAhead {
 public:
  explicit OneAhead(std::function<T(int64_t)> make)
      : make_(std::move(make)), thread_([this] { Loop(); }) {}
  ~OneAhead() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();  // after the value in progress, if any
  }
  OneAhead(const OneAhead&) = delete;
  OneAhead& operator=(const OneAhead&) = delete;

  // REQUIRES: the previous Start()'s value was taken.
  void Start(int64_t k) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      requested_ = k;
    }
    changed_.notify_all();
  }

  // The value of the last Start(); rethrows what building it threw.
  T Take() {
    std::unique_lock<std::mutex> lock(mu_);
    if (requested_ >= 0) {  // the thread has not started on it: build it here
      const int64_t k = std::exchange(requested_, -1);
      lock.unlock();
      ++built_by_caller_;
      return make_(k);
    }
    changed_.wait(lock, [this] { return ready_; });
    ready_ = false;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    return std::move(value_);
  }

  // How many values Take() built itself (for tests and measurements).
  int64_t built_by_caller() const { return built_by_caller_; }

 private:
  void Loop() {
    LowerThisThreadsPriority();
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      changed_.wait(lock, [this] { return stop_ || requested_ >= 0; });
      if (stop_) return;
      const int64_t k = std::exchange(requested_, -1);
      lock.unlock();
      T value;
      std::exception_ptr error;
      try {
        value = make_(k);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      value_ = std::move(value);
      error_ = error;
      ready_ = true;
      changed_.notify_all();
    }
  }

  const std::function<T(int64_t)> make_;
  std::mutex mu_;
  std::condition_variable changed_;
  int64_t requested_ = -1;  // guarded by mu_; -1: none waiting to be built
  bool ready_ = false;      // guarded by mu_
  bool stop_ = false;       // guarded by mu_
  T value_;                 // guarded by mu_
  std::exception_ptr error_;  // guarded by mu_
  int64_t built_by_caller_ = 0;  // the caller's own
  std::thread thread_;      // last: starts once the members above exist
};

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_ONE_AHEAD_H_
