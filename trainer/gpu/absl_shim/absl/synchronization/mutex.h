// Shim (see absl/README): absl::Mutex over std::mutex.
#ifndef RECSYS_ABSL_SHIM_MUTEX_H_
#define RECSYS_ABSL_SHIM_MUTEX_H_
#include <mutex>
#include "absl/base/thread_annotations.h"
namespace absl {
class Mutex {
 public:
  void Lock() { mu_.lock(); }
  void Unlock() { mu_.unlock(); }
 private:
  std::mutex mu_;
};
class MutexLock {
 public:
  explicit MutexLock(Mutex* mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
 private:
  Mutex* mu_;
};
}  // namespace absl
#endif
