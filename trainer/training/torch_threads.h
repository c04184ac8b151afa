// Process-wide CPU thread settings for training: LibTorch's intra-op pool
// (OpenMP), its inter-op pool, and the BLAS library's own pool.
//
// Why all three: Debian's LibTorch does its matrix products in OpenBLAS
// (pthreads build), whose pool is sized by the core count and ignores
// torch::set_num_threads; its idle workers spin (sched_yield) after each
// call. With --threads=N the process then ran N OpenMP threads plus
// OpenBLAS's workers plus LibTorch's inter-op pool on N cores, and on a
// shared machine a step that needs every thread of a parallel region waited
// for descheduled ones (2 threads measured ~30x slower than 1 on this
// 2-core machine under load, trainer/README.md "Speed").
//
// The trainer's --threads=N >= 2 on the CPU does not use this for N: it
// calls ConfigureTorchThreads(1) and splits each step over N workers of its
// own (trainer.cc "sharded step", trainer/README.md "Threads"): this
// step's ops are too small for intra-op parallelism, and OpenMP's spinning
// workers plus OpenBLAS's fought for the cores (2 intra-op threads: 27 ms
// a step against 14 ms for 1 on a quiet 2-core machine). With one intra-op
// thread per process, each worker thread also runs its ops inline:
// LibTorch initialises a new thread's OpenMP thread count from the
// process-wide setting.
//
// Thread-safety: call from one thread, before training starts; the settings
// are process-wide (one training per process, as the trainer service does).
#ifndef RECSYS_TRAINER_TRAINING_TORCH_THREADS_H_
#define RECSYS_TRAINER_TRAINING_TORCH_THREADS_H_

#include <string>

namespace recsys {

// n >= 1: n intra-op threads, n BLAS threads (when the BLAS library exposes
// openblas_set_num_threads), and a single inter-op thread (the step runs
// its ops in order; set once per process, later calls keep the first
// value). n <= 0 leaves LibTorch's defaults. Returns what was set, for logs.
std::string ConfigureTorchThreads(int n);

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAINING_TORCH_THREADS_H_
