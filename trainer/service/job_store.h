// Durable job records of the Trainer service, in one SQLite file.
//
// Every acknowledged change (a submitted job, a state transition, an epoch's
// metrics, the resulting version) is committed before the call returns, in
// WAL mode with synchronous=FULL, so it survives kill -9 and power loss.
// Live progress (step, loss, ETA) is not stored: it changes many times a
// second and is kept by the JobManager in memory.
//
// Schema (versioned: `schema_migrations` lists the applied migrations; Open
// applies the missing ones in order, each in one transaction):
//   jobs(id, kind, state, device, spec BLOB (JobSpec), created_at,
//        started_at, finished_at, error, version, metrics_json)
//   job_transitions(seq, job_id, state, at, reason)
//   job_epochs(job_id, epoch, loss, hr10, ndcg10, seconds, items_per_second)
//
// Thread-safety: thread-safe (one connection behind a mutex). One process
// per file: Open takes an exclusive lock on "<path>.lock" (flock), so a
// second trainer on the same data directory fails to start.
#ifndef RECSYS_TRAINER_SERVICE_JOB_STORE_H_
#define RECSYS_TRAINER_SERVICE_JOB_STORE_H_

#include <cstdint>
#include <map>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/trainer.pb.h"

struct sqlite3;

namespace recsys {

// The newest schema this code writes (the number of migrations).
inline constexpr int kJobStoreSchemaVersion = 1;

bool IsTerminal(v1::JobState state);

class JobStore {
 public:
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  ~JobStore();

  int schema_version() const { return schema_version_; }

  // A new QUEUED job (with its first transition). Returns it with its id.
  absl::StatusOr<v1::Job> Create(const v1::JobSpec& spec, v1::JobKind kind,
                                 const std::string& device);
  // Records a transition (with `reason`); sets started_at on RUNNING and
  // finished_at on a terminal state; a non-empty `error` replaces the job's.
  absl::Status Transition(int64_t id, v1::JobState state, const std::string& reason,
                          const std::string& error = "");
  absl::Status SetVersion(int64_t id, int64_t version);
  absl::Status SetMetrics(int64_t id, const std::string& metrics_json);
  absl::Status AddEpoch(int64_t id, const v1::EpochMetrics& epoch);

  // NOT_FOUND naming the id.
  absl::StatusOr<v1::Job> Get(int64_t id);
  // Newest first, ids below `before_id` (0: no bound), optional filters
  // (UNSPECIFIED: any), at most `limit`.
  absl::StatusOr<std::vector<v1::Job>> List(v1::JobState state, v1::JobKind kind,
                                            int64_t before_id, int limit);
  // Jobs in any of `states`, oldest first.
  absl::StatusOr<std::vector<v1::Job>> InStates(const std::vector<v1::JobState>& states);
  // The job that produced `version`, 0 when none.
  absl::StatusOr<int64_t> JobOfVersion(int64_t version);
  // Number of jobs per (kind, state).
  absl::StatusOr<std::map<std::pair<v1::JobKind, v1::JobState>, int64_t>> CountByKindAndState();
  // The largest version any job recorded (0: none).
  absl::StatusOr<int64_t> MaxVersion();

 private:
  JobStore(sqlite3* db, int lock_fd) : db_(db), lock_fd_(lock_fd) {}
  absl::Status Migrate() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ExecLocked(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::Job> GetLocked(int64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<v1::Job>> QueryJobsLocked(const std::string& sql,
                                                       const std::vector<int64_t>& args)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);
  const int lock_fd_;
  int schema_version_ = 0;
};

}  // namespace recsys

#endif  // RECSYS_TRAINER_SERVICE_JOB_STORE_H_
