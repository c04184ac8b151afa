// The Trainer service's core: validates and records jobs (JobStore), queues
// them per device, runs each in a supervised worker process, follows its
// progress, and publishes the resulting model version into the retrieval
// sidecar. Knows nothing of gRPC; trainer_service.cc is its transport.
//
// Execution: one thread per device takes that device's jobs in submission
// order, one at a time. A job runs as a child process (fork + exec of
// `worker_path`, see job_worker_main.cc) that reports JSON lines over a pipe;
// its crash, OOM kill or hang cannot take the service down. The child dies
// with the service (PR_SET_PDEATHSIG), so a killed trainer leaves no worker
// writing behind its back.
//
// Refresh jobs (embedding_refresh.h) are planned at submit with the same
// LibTorch-free planner the worker runs (refresh_plan.h), so an unknown
// version, a version that cannot be refreshed or a cache of another backbone
// is refused before anything is recorded; the worker writes the job's
// updated cache to jobs/<id>/text_states.safetensors.
//
// Cancel: a queued job is CANCELLED at once; a running one gets SIGTERM
// (training stops at its next step and exports nothing), then SIGKILL after
// `cancel_grace`. Either way the job's temporary version directory is
// removed, so no partial version is ever visible.
//
// Restart: jobs RUNNING when the previous process died become FAILED
// ("trainer restarted during the job") and their version directory (if the
// worker got as far as renaming it) is removed; jobs PUBLISHING become
// PUBLISH_FAILED (the version stays; PublishModelVersion retries); QUEUED
// jobs are queued again.
//
// Thread-safety: thread-safe. Lock order: mu_ before a Subscriber's mu.
#ifndef RECSYS_TRAINER_SERVICE_JOB_MANAGER_H_
#define RECSYS_TRAINER_SERVICE_JOB_MANAGER_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/trainer.pb.h"
#include "retrieval/client/retrieval_client.h"
#include "trainer/service/job_store.h"

namespace recsys {

struct JobManagerOptions {
  std::string data_dir;                    // jobs.sqlite, jobs/<id>/ (required)
  std::string models_dir;                  // empty: <data_dir>/models
  std::vector<std::string> devices = {"cpu"};  // one queue each
  std::string worker_path;                 // the job_worker binary (required)
  int worker_threads = 1;                  // LibTorch threads per worker
  absl::Duration cancel_grace = absl::Seconds(2);  // SIGTERM -> SIGKILL
  // Jobs waiting on one device; a submit beyond is RESOURCE_EXHAUSTED (and
  // recorded nowhere), so a flood of submits cannot grow the queue and the
  // job store without bound. Jobs recovered at start are not limited.
  int max_queued_jobs = 64;
  std::string retrieval;                   // sidecar host:port; empty: no publishing
  std::string collection = "items";        // the item collection = model name
  std::string index_factory = "Flat";      // of a new collection
};

class JobManager {
 public:
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(const JobManagerOptions& options);
  // Stops the device threads; running workers are killed (their jobs are
  // then FAILED on the next start, as after a crash).
  ~JobManager();

  // Validates (precise INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION /
  // ALREADY_EXISTS naming the field), records and queues. Nothing is
  // recorded when the spec is refused.
  absl::StatusOr<v1::Job> Submit(const v1::JobSpec& spec) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Job> Get(int64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListJobsResponse> List(const v1::ListJobsRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);
  // FAILED_PRECONDITION for a finished or publishing job.
  absl::StatusOr<v1::Job> Cancel(int64_t id) ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<v1::ListModelVersionsResponse> ListModelVersions() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::PublishModelVersionResponse> Publish(int64_t version)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Watching: `fn` is called with the job's state now and after every
  // change, on the manager's threads, never after Unsubscribe returns.
  // `fn` must not call Unsubscribe.
  using WatchFn = std::function<void(const v1::Job&)>;
  absl::StatusOr<int64_t> Subscribe(int64_t job_id, WatchFn fn) ABSL_LOCKS_EXCLUDED(mu_);
  void Unsubscribe(int64_t token) ABSL_LOCKS_EXCLUDED(mu_);

  const JobManagerOptions& options() const { return options_; }

 private:
  struct Live {
    v1::JobProgress progress;
    std::string device;  // where the job runs (a metric label)
    pid_t pid = 0;
    bool cancel_requested = false;
  };
  struct Subscriber {
    int64_t job_id;
    absl::Mutex mu;
    bool active ABSL_GUARDED_BY(mu) = true;
    WatchFn fn;
  };

  explicit JobManager(JobManagerOptions options) : options_(std::move(options)) {}
  absl::Status Recover() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Validate(v1::JobSpec* spec) ABSL_LOCKS_EXCLUDED(mu_);
  void DeviceLoop(std::string device) ABSL_LOCKS_EXCLUDED(mu_);
  void RunJob(int64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs the worker to its end; OK only after its "done" event.
  absl::Status Supervise(const v1::Job& job, int64_t version, std::string* metrics_json)
      ABSL_LOCKS_EXCLUDED(mu_);
  void HandleEvent(int64_t id, const std::string& line) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<int64_t> AllocateVersion() ABSL_LOCKS_EXCLUDED(mu_);
  void RemoveVersionLeftovers(int64_t version, bool including_final);
  absl::Status PublishVersion(int64_t version, int64_t job_id, v1::PublishModelVersionResponse* out)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Store record + live progress + queue position.
  absl::StatusOr<v1::Job> Overlay(v1::Job job) ABSL_LOCKS_EXCLUDED(mu_);
  void Notify(int64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  void Transition(int64_t id, v1::JobState state, const std::string& reason,
                  const std::string& error = "") ABSL_LOCKS_EXCLUDED(mu_);
  void UpdateMetrics() ABSL_LOCKS_EXCLUDED(mu_);

  const JobManagerOptions options_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<RetrievalClient> retrieval_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::deque<int64_t>> queues_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Live> live_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> active_cache_outputs_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, std::shared_ptr<Subscriber>> subscribers_ ABSL_GUARDED_BY(mu_);
  int64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t last_version_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex publish_mu_;  // one publish into the collection at a time
  std::vector<std::thread> threads_;
};

}  // namespace recsys

#endif  // RECSYS_TRAINER_SERVICE_JOB_MANAGER_H_
