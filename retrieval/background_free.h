// BackgroundFree: destroys large objects on one background thread.
//
// A collection version can hold gigabytes (rows, graph, walk copy).
// Freeing it unmaps all of that: milliseconds with huge pages, far more
// without. Whoever drops the last reference pays, and that is either a
// search that happened to hold it (a latency spike on a random request) or
// a publish holding the version table's lock (every search waits). Versions
// are therefore handed out as shared_ptrs whose deleter only queues the
// object here.
//
// Thread-safety: all functions are thread-safe.
#ifndef RECSYS_RETRIEVAL_BACKGROUND_FREE_H_
#define RECSYS_RETRIEVAL_BACKGROUND_FREE_H_

#include <functional>
#include <memory>

namespace recsys {
namespace retrieval {

// Runs `free_fn` on the background thread, after everything scheduled
// before it. The thread starts on first use and lives until the process
// exits; anything still queued then is left to the OS.
void ScheduleBackgroundFree(std::function<void()> free_fn);

// Blocks until everything scheduled before the call has run.
void FlushBackgroundFree();

// A shared_ptr that deletes `p` on the background thread.
template <typename T>
std::shared_ptr<const T> SharedFreedInBackground(std::unique_ptr<T> p) {
  return std::shared_ptr<const T>(p.release(), [](const T* t) {
    ScheduleBackgroundFree([t] { delete t; });
  });
}

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_BACKGROUND_FREE_H_
