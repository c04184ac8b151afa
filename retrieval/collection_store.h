// CollectionStore: every collection under one data directory, by name.
// Opening it restores each collection (see Collection::Open); creating and
// dropping are durable (directory created complete / renamed away before
// removal).
//
// Collections are handed out as std::shared_ptr, so a request that holds
// one finishes normally even if the collection is dropped meanwhile.
//
// One store per data directory: Open takes an exclusive flock on
// <data_dir>/.lock (released when the store is destroyed or the process
// dies, kill -9 included), so a second server on the same directory is
// refused instead of interleaving its writes with the first one's.
//
// Thread-safety: every method is thread-safe; the map lock is never held
// during disk I/O of a collection's data.
#ifndef RECSYS_RETRIEVAL_COLLECTION_STORE_H_
#define RECSYS_RETRIEVAL_COLLECTION_STORE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "retrieval/collection.h"

namespace recsys {
namespace retrieval {

class CollectionStore {
 public:
  struct Options {
    std::string data_dir;          // created if missing
    int versions_to_keep = 3;      // per collection, besides the live one
    // OpenMP threads of an index build (0: all cores but one, at least 1),
    // so a running build leaves a core to searches.
    int build_threads = 0;
    // Nice value (0..19) of build threads: under CPU contention the
    // scheduler then runs searches first instead of sharing time slices.
    int build_nice = 10;
    EntryLimits limits;
    absl::Duration max_build_time = absl::Hours(6);  // per build
    int64_t max_build_bytes = 0;  // per build; 0: half the physical memory
  };

  // Restores every collection found in data_dir. A collection that cannot
  // be opened at all is FAILED: reported in restore_errors() and Failed(),
  // Get answers FAILED_PRECONDITION with the reason, Create ALREADY_EXISTS,
  // and Drop removes it (an operator's choice; or restore its directory).
  // FAILED_PRECONDITION when another store holds data_dir.
  static absl::StatusOr<std::unique_ptr<CollectionStore>> Open(
      const Options& options);

  // ALREADY_EXISTS, or INVALID_ARGUMENT for a bad config.
  absl::StatusOr<std::shared_ptr<Collection>> Create(
      const CollectionConfig& config) ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND naming the collection.
  absl::StatusOr<std::shared_ptr<Collection>> Get(const std::string& name) const
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Drop(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<std::shared_ptr<Collection>> List() const ABSL_LOCKS_EXCLUDED(mu_);

  const std::vector<std::string>& restore_errors() const {
    return restore_errors_;
  }
  // Collections that failed to restore and are not dropped: name -> reason.
  std::map<std::string, std::string> Failed() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Closes the lock file (releasing the flock) after everything else.
  struct LockFile {
    int fd = -1;
    ~LockFile();
  };

  explicit CollectionStore(Options options) : options_(std::move(options)) {}
  CollectionOptions OptionsFor(const std::string& name) const;

  const Options options_;
  LockFile lock_;  // declared before the collections: released after them
  std::vector<std::string> restore_errors_;
  // Serialises Create/Drop (which do disk I/O) without blocking Get.
  absl::Mutex admin_mu_;
  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(admin_mu_);
  std::map<std::string, std::shared_ptr<Collection>> collections_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> failed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_COLLECTION_STORE_H_
