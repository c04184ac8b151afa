// Progress of a long job: fraction done, rate and ETA, logged at most every
// `log_interval` and readable at any time (for a job-status RPC).
// Thread-safe: one thread calls Update(), any thread may call Snapshot().
#ifndef RECSYS_COMMON_PROGRESS_H_
#define RECSYS_COMMON_PROGRESS_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace recsys {

struct ProgressSnapshot {
  int64_t done = 0;
  int64_t total = 0;       // 0 when unknown.
  double fraction = 0.0;   // 0..1 (0 when total is unknown).
  double rate = 0.0;       // units per second since Start.
  double eta_seconds = -1;  // negative when unknown.
  std::string unit;
  std::string phase;
  absl::Duration elapsed;

  // "epoch 2/10: 41.0% (4100/10000 items) 812.3 items/s, ETA 7s".
  std::string ToString() const;
};

class ProgressTracker {
 public:
  struct Options {
    std::string name = "job";              // prefix of the log lines
    std::string unit = "items";            // what is counted
    absl::Duration log_interval = absl::Seconds(5);  // 0 disables logging
  };

  explicit ProgressTracker(Options options);

  // Resets the clock and the counts.
  void Start(int64_t total, std::string phase = "") ABSL_LOCKS_EXCLUDED(mu_);
  void SetPhase(std::string phase) ABSL_LOCKS_EXCLUDED(mu_);
  // Sets the absolute count of units done; logs when the interval passed.
  void Update(int64_t done) ABSL_LOCKS_EXCLUDED(mu_);
  void Add(int64_t delta) ABSL_LOCKS_EXCLUDED(mu_);
  // Logs a final line.
  void Finish() ABSL_LOCKS_EXCLUDED(mu_);

  ProgressSnapshot Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ProgressSnapshot SnapshotLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeLogLocked(bool force) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  absl::Time start_ ABSL_GUARDED_BY(mu_) = absl::Now();
  absl::Time last_log_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t done_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t total_ ABSL_GUARDED_BY(mu_) = 0;
  std::string phase_ ABSL_GUARDED_BY(mu_);
};

}  // namespace recsys

#endif  // RECSYS_COMMON_PROGRESS_H_
