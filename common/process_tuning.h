// Process-wide settings for a latency-bound serving binary, applied once,
// first thing in main(), before any thread that uses them starts. Measured
// on the 2-core machines here by server/recommend_bench (server/README.md).
//
// - SetBlasThreads: OpenBLAS (LibTorch's and FAISS's BLAS in the Debian
//   build) starts one worker per core and splits each large-enough sgemm
//   across them; between calls the workers spin in sched_yield. Beside
//   gRPC threads and a batched encoder that already keep the cores busy,
//   the spinning took ~30% of the machine in recommend_bench. n = 1 runs
//   every BLAS call on its caller's thread. A no-op (false) in a process
//   without OpenBLAS (e.g. a LibTorch built with MKL).
// - DisableMutexDeadlockDetection: Debian's Abseil is built without NDEBUG,
//   so every absl::Mutex lock (gRPC's own locks included) updates a
//   lock-order graph; GraphCycles took 2-5% of each process's CPU in the
//   bench. Tests keep the detection; serving binaries turn it off.
//
// Thread-safety: call before starting threads.
#ifndef RECSYS_COMMON_PROCESS_TUNING_H_
#define RECSYS_COMMON_PROCESS_TUNING_H_

namespace recsys {

// REQUIRES: n >= 1. Returns whether OpenBLAS was found (and set).
bool SetBlasThreads(int n);

// OpenBLAS's thread count, or 0 without OpenBLAS.
int BlasThreads();

void DisableMutexDeadlockDetection();

}  // namespace recsys

#endif  // RECSYS_COMMON_PROCESS_TUNING_H_
