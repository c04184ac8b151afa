#include "common/process_tuning.h"

#include <dlfcn.h>

#include <algorithm>

#include "absl/synchronization/mutex.h"

namespace recsys {
namespace {

// Looked up at run time, so binaries without OpenBLAS (and builds against
// another BLAS) need no link dependency on it.
template <typename F>
F* Find(const char* name) {
  return reinterpret_cast<F*>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

bool SetBlasThreads(int n) {
  auto* set = Find<void(int)>("openblas_set_num_threads");
  if (set == nullptr) return false;
  set(std::max(1, n));
  return true;
}

int BlasThreads() {
  auto* get = Find<int()>("openblas_get_num_threads");
  return get == nullptr ? 0 : get();
}

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace recsys
