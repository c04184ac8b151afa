// EncodeBatcher: coalesces concurrent user encodings for the same model
// version into one batched LibTorch forward (ServingModel::EncodeRows), run
// on a small pool of worker threads, never on a gRPC callback thread.
//
// Tasks queue per model version (the ServingModel instance, so a request is
// encoded by exactly the version it was planned with). A worker takes the
// queue whose head is oldest and up to max_batch_size of its tasks. With
// max_wait = 0 (the default) a worker never waits for a batch to fill: a
// lone task runs at once and tasks that arrive while a forward runs form the
// next batch, so batches grow with load and add no latency when idle. With
// max_wait > 0 a worker waits until the batch is full, the head task has
// waited max_wait, or the earliest deadline in the queue, whichever comes
// first. A task still queued at its deadline is not encoded: it reaches the
// sink with DEADLINE_EXCEEDED (the same rule as retrieval/search_batcher.h).
//
// Every batch goes to the sink in one call, on the worker thread, so the
// caller can send the batch's sidecar query as one multi-query Search.
//
// Thread-safety: Submit is thread-safe. The sink runs on worker threads and
// must not block. The destructor encodes what is queued, then joins.
#ifndef RECSYS_SERVER_ENCODE_BATCHER_H_
#define RECSYS_SERVER_ENCODE_BATCHER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/serving_model.h"

namespace recsys {

// One user to encode. Callers derive from it to carry their own state
// through to the sink.
class EncodeTask {
 public:
  virtual ~EncodeTask() = default;

  // Input, set before Submit. REQUIRES: non-empty, rows of the model.
  std::vector<int64_t> rows;
  absl::Time deadline = absl::InfiniteFuture();

  // Output, set by the batcher before the sink sees the task.
  absl::Status status;
  std::vector<float> user;  // embedding_dim floats when status is OK
  absl::Time enqueued;
  absl::Duration queue_time;   // Submit -> the batch's forward started
  absl::Duration encode_time;  // the batch's forward
  int batch_size = 0;          // tasks in that forward
};

class EncodeBatcher {
 public:
  struct Options {
    int max_batch_size = 32;                         // users per forward
    absl::Duration max_wait = absl::ZeroDuration();  // wait to fill a batch
    int num_threads = 1;                             // concurrent forwards
  };
  using Sink = std::function<void(const std::shared_ptr<const ServingModel>& model,
                                  std::vector<std::shared_ptr<EncodeTask>> batch)>;

  // Options are clamped to at least 1 (batch size, threads).
  EncodeBatcher(Options options, Sink sink);
  ~EncodeBatcher();
  EncodeBatcher(const EncodeBatcher&) = delete;
  EncodeBatcher& operator=(const EncodeBatcher&) = delete;

  void Submit(std::shared_ptr<const ServingModel> model, std::shared_ptr<EncodeTask> task)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Forwards run so far (each one batch).
  int64_t forwards() const { return forwards_.load(std::memory_order_relaxed); }

 private:
  struct Queue {
    std::shared_ptr<const ServingModel> model;
    std::deque<std::shared_ptr<EncodeTask>> tasks;
  };
  void Work() ABSL_LOCKS_EXCLUDED(mu_);
  // The queue whose head waited longest; nullptr when all are empty.
  Queue* OldestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const Sink sink_;
  absl::Mutex mu_;
  absl::CondVar work_;
  std::map<const ServingModel*, Queue> queues_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int64_t> forwards_{0};
  std::vector<std::thread> workers_;
};

}  // namespace recsys

#endif  // RECSYS_SERVER_ENCODE_BATCHER_H_
