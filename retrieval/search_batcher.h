// SearchBatcher: coalesces concurrent searches on the same collection
// version (and the same search options) into one index call. A batch reads
// a Flat collection's rows once for all its queries (FastFlatIndex's
// blocked scans, or BLAS for L2 batches from 32), so it costs a fraction per query
// of separate calls.
//
// Queries queue per batching key; worker threads take the oldest queued
// query and every other queued query with the same key, up to
// max_batch_size. With max_wait = 0 (the default) a worker never waits for
// a batch to fill: a lone query runs at once, and queries that arrive while
// a batch runs form the next batch, so batching grows with load and adds no
// latency when idle. max_wait > 0 lets a worker wait that long for more.
//
// Thread-safety: Submit is thread-safe. `done` runs on a worker thread, or
// on the submitting thread before Submit returns when the query ran inline;
// it must not block. The destructor finishes queued work first.
#ifndef RECSYS_RETRIEVAL_SEARCH_BATCHER_H_
#define RECSYS_RETRIEVAL_SEARCH_BATCHER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "retrieval/collection_version.h"

namespace recsys {
namespace retrieval {

struct BatchQuery {
  std::vector<float> vector;  // validated and normalised
  int k = 10;
  std::vector<int64_t> exclude_ids;
  // A query still queued at its deadline is answered DEADLINE_EXCEEDED
  // instead of being searched.
  absl::Time deadline = absl::InfiniteFuture();
};

class SearchBatcher {
 public:
  struct Options {
    int max_batch_size = 64;                         // queries per FAISS call
    absl::Duration max_wait = absl::ZeroDuration();  // wait to fill a batch
    int num_threads = 1;                             // concurrent batches
    // OpenMP threads per batch. 1: parallelism comes from num_threads
    // batches at once; OpenMP workers spinning beside busy gRPC threads on
    // a small machine cost more than they give.
    int omp_threads_per_batch = 1;
    // When nothing is queued or running, search a query on the caller's
    // (gRPC) thread instead of handing it to a worker. Off by default: on
    // the 2-core machines here it measured ~0.2 ms slower at p50 (the
    // FAISS scan on a gRPC thread delays that thread's other work).
    bool run_inline_when_idle = false;
  };
  // (hits or error, size of the batch the query ran in)
  using Done =
      std::function<void(absl::StatusOr<std::vector<SearchHit>>, int batch)>;

  static absl::StatusOr<std::unique_ptr<SearchBatcher>> Create(
      const Options& options);
  ~SearchBatcher();

  void Submit(std::shared_ptr<const CollectionVersion> version,
              VersionSearchOptions options, BatchQuery query, Done done)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Pending {
    std::shared_ptr<const CollectionVersion> version;
    VersionSearchOptions options;
    BatchQuery query;
    Done done;
  };
  explicit SearchBatcher(const Options& options) : options_(options) {}
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // Drops expired queries, searches the rest in one call, runs callbacks.
  static void Run(std::vector<Pending> batch);
  static bool SameBatch(const Pending& a, const Pending& b);

  const Options options_;
  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // batches being searched
  std::vector<std::thread> threads_;
};

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_SEARCH_BATCHER_H_
