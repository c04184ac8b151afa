#include "common/progress.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace recsys {

std::string ProgressSnapshot::ToString() const {
  std::string out = phase.empty() ? "" : phase + ": ";
  if (total > 0) {
    absl::StrAppendFormat(&out, "%.1f%% (%d/%d %s)", 100.0 * fraction, done,
                          total, unit);
  } else {
    absl::StrAppendFormat(&out, "%d %s", done, unit);
  }
  absl::StrAppendFormat(&out, " %.1f %s/s", rate, unit);
  if (eta_seconds >= 0) absl::StrAppendFormat(&out, ", ETA %.0fs", eta_seconds);
  return out;
}

ProgressTracker::ProgressTracker(Options options)
    : options_(std::move(options)) {}

void ProgressTracker::Start(int64_t total, std::string phase) {
  absl::MutexLock lock(&mu_);
  start_ = absl::Now();
  last_log_ = start_;
  done_ = 0;
  total_ = total;
  phase_ = std::move(phase);
}

void ProgressTracker::SetPhase(std::string phase) {
  absl::MutexLock lock(&mu_);
  phase_ = std::move(phase);
}

void ProgressTracker::Update(int64_t done) {
  absl::MutexLock lock(&mu_);
  done_ = done;
  MaybeLogLocked(false);
}

void ProgressTracker::Add(int64_t delta) {
  absl::MutexLock lock(&mu_);
  done_ += delta;
  MaybeLogLocked(false);
}

void ProgressTracker::Finish() {
  absl::MutexLock lock(&mu_);
  MaybeLogLocked(true);
}

ProgressSnapshot ProgressTracker::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return SnapshotLocked();
}

ProgressSnapshot ProgressTracker::SnapshotLocked() const {
  ProgressSnapshot s;
  s.done = done_;
  s.total = total_;
  s.unit = options_.unit;
  s.phase = phase_;
  s.elapsed = absl::Now() - start_;
  const double secs = absl::ToDoubleSeconds(s.elapsed);
  s.rate = secs > 0 ? static_cast<double>(done_) / secs : 0.0;
  if (total_ > 0) {
    s.fraction = static_cast<double>(done_) / static_cast<double>(total_);
    if (s.fraction > 1.0) s.fraction = 1.0;
    if (s.rate > 0) {
      s.eta_seconds = static_cast<double>(total_ - done_) / s.rate;
      if (s.eta_seconds < 0) s.eta_seconds = 0;
    }
  }
  return s;
}

void ProgressTracker::MaybeLogLocked(bool force) {
  if (options_.log_interval <= absl::ZeroDuration() && !force) return;
  const absl::Time now = absl::Now();
  if (!force && now - last_log_ < options_.log_interval) return;
  last_log_ = now;
  LOG(INFO) << options_.name << " " << SnapshotLocked().ToString();
}

}  // namespace recsys
