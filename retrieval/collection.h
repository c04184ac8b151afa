// Collection: one named vector collection with a durable staging set and a
// window of immutable, published versions.
//
// Writes (Upsert, Delete) change the staging set: a delta over the newest
// built version ("head"), recorded in the StagingLog and fsynced before they
// return. Publish freezes the delta, builds a new CollectionVersion from
// head + delta on a background thread, writes its snapshot, and only then
// makes it live and drops the log files it covers. Writes keep flowing into
// a fresh delta meanwhile; a failed build puts its delta back under it.
//
// Readers call GetVersion() and get a std::shared_ptr<const
// CollectionVersion>; they take a reader lock only long enough to copy the
// pointer, and no disk I/O or index build ever happens under that lock.
// The newest `versions_to_keep` versions plus the live one stay loaded;
// older ones are unloaded and deleted from disk (readers still holding one
// keep it alive until they let go).
//
// Rollback(v) resets the collection to v: v is served and becomes the
// staging base, so the next Publish holds v plus what is staged (entries of
// newer versions do not come back); newer versions stay loaded and can be
// rolled back to in turn.
//
// Restore (Open) cross-checks every file: collection.json and LIVE carry
// their own CRC-32C, the config must name the directory and validate,
// LIVE must name a version on disk, each snapshot's manifest its own
// directory's version (snapshot.h). A mismatch fails Open (the store lists
// the collection as FAILED with the reason). A complete version newer than
// LIVE that no Rollback chose (a publish cut short by a crash) is made
// live. A corrupt staging log (not a torn tail, see staging_log.h) leaves
// the collection DEGRADED: it serves its versions, refuses writes and
// publishes, and Status().error says why, until an operator salvages.
//
// Builds are bounded: the estimated peak memory against max_build_bytes
// and the training cost against max_build_time are checked before a build
// starts, and a build still running at max_build_time is stopped; each
// fails that version with the reason.
//
// Directory layout (options.dir):
//   collection.json, LIVE (live version number), staging-<seq>.log,
//   versions/v<20 digits>/ (see snapshot.h)
//
// Thread-safety: every method is thread-safe.
// Lock order: control_mu_ -> staging_mu_ -> versions_mu_.
#ifndef RECSYS_RETRIEVAL_COLLECTION_H_
#define RECSYS_RETRIEVAL_COLLECTION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/progress.h"
#include "retrieval/collection_config.h"
#include "retrieval/collection_version.h"
#include "retrieval/staging_log.h"

namespace recsys {
namespace retrieval {

struct CollectionOptions {
  std::string dir;               // the collection's own directory
  int versions_to_keep = 3;      // loaded versions besides the live one
  int build_threads = 0;         // OpenMP threads per build; 0: cores - 1
  int build_nice = 10;           // build threads' nice value, if higher
  EntryLimits limits;
  // Longest a build may run (training included) before it is stopped.
  absl::Duration max_build_time = absl::Hours(6);
  // Estimated peak bytes a build may hold; 0: half the physical memory.
  int64_t max_build_bytes = 0;
};

enum class VersionState { kBuilding, kReady, kLive, kFailed };

struct VersionStatus {
  int64_t version = 0;
  VersionState state = VersionState::kReady;
  int64_t entries = 0;
  int64_t memory_bytes = 0;
  std::string index_description;
  absl::Time created = absl::InfinitePast();
  ProgressSnapshot progress;  // while building
  std::string error;          // when failed
};

struct CollectionStatus {
  CollectionConfig config;
  int64_t live_version = 0;
  int64_t staging_entries = 0;   // entries the next Publish would hold
  int64_t pending_changes = 0;   // keys changed since the head version
  std::vector<VersionStatus> versions;  // ascending
  // Non-empty when the collection is DEGRADED (see above): why.
  std::string error;
};

class Collection {
 public:
  // Creates options.dir with a fresh, empty collection.
  // ALREADY_EXISTS when options.dir holds one.
  static absl::StatusOr<std::unique_ptr<Collection>> Create(
      const CollectionConfig& config, const CollectionOptions& options);
  // Restores a collection from options.dir: loads the live version and the
  // newest versions_to_keep good ones, replays the staging log. A corrupt
  // version is reported in Status() and load_errors(), never served; if the
  // live one is corrupt, the newest good older version becomes live.
  static absl::StatusOr<std::unique_ptr<Collection>> Open(
      const CollectionOptions& options);
  // Cancels and joins a running build.
  ~Collection();

  const CollectionConfig& config() const { return config_; }
  // Bounds on keys, payloads and batches, as Upsert/Delete apply them.
  const EntryLimits& limits() const { return options_.limits; }

  // Validates the whole batch, logs it durably, then applies it; nothing is
  // applied when it fails.
  absl::Status Upsert(std::vector<Entry> batch) ABSL_LOCKS_EXCLUDED(staging_mu_);
  // Returns how many of `keys` existed in staging.
  absl::StatusOr<int64_t> Delete(const std::vector<std::string>& keys)
      ABSL_LOCKS_EXCLUDED(staging_mu_);

  // Reads `keys` as the next Publish would see them (the head version
  // overlaid with acknowledged writes, including those of a running build):
  // read-your-writes before publishing. nullopt for a missing or deleted key.
  std::vector<std::optional<Entry>> GetStaged(
      const std::vector<std::string>& keys) const
      ABSL_LOCKS_EXCLUDED(staging_mu_);

  using PublishCallback = std::function<void(absl::StatusOr<VersionStatus>)>;
  // Starts building `version` (0: newest + 1; otherwise it must exceed every
  // existing version) from the staging set. Returns the BUILDING status at
  // once; `done` (may be null) runs on the build thread with the final
  // status once the version is live or has failed.
  // FAILED_PRECONDITION while another build runs or for a stale number,
  // except that publishing the version that is already the staging base
  // with nothing staged since (a retry) returns it, made live, at once.
  absl::StatusOr<VersionStatus> Publish(int64_t version, PublishCallback done)
      ABSL_LOCKS_EXCLUDED(control_mu_);
  // Publish and wait for the outcome.
  absl::StatusOr<VersionStatus> PublishAndWait(int64_t version);

  // Makes a loaded version live and the base of the next Publish (NOT_FOUND
  // when it is not loaded; FAILED_PRECONDITION while a build runs).
  absl::StatusOr<VersionStatus> Rollback(int64_t version)
      ABSL_LOCKS_EXCLUDED(control_mu_);

  // version 0: the live one (FAILED_PRECONDITION when none is published).
  // NOT_FOUND when not loaded; UNAVAILABLE while it is still building.
  absl::StatusOr<std::shared_ptr<const CollectionVersion>> GetVersion(
      int64_t version) const ABSL_LOCKS_EXCLUDED(versions_mu_);

  CollectionStatus Status() const;

  // Stops accepting writes and cancels a running build (for Drop).
  void Shutdown();

 private:
  struct StagedEntry {
    std::vector<float> vector;
    Payload payload;
  };
  // nullopt marks a delete.
  using Delta = absl::flat_hash_map<std::string, std::optional<StagedEntry>>;
  struct Build {
    int64_t version = 0;
    std::unique_ptr<ProgressTracker> progress;
  };

  Collection(CollectionConfig config, CollectionOptions options);
  void RunBuild(int64_t version, std::shared_ptr<const CollectionVersion> base,
                std::shared_ptr<Delta> frozen, int64_t frozen_seq,
                PublishCallback done);
  absl::Status FinishPublish(std::shared_ptr<const CollectionVersion> v,
                             int64_t frozen_seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_);
  // Unloads versions outside the window; returns their directories.
  std::vector<std::string> CollectGarbageLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(versions_mu_);
  std::string VersionDir(int64_t version) const;
  VersionStatus StatusOf(const CollectionVersion& v, bool live) const;
  // FAILED_PRECONDITION when the collection is DEGRADED.
  absl::Status CheckWritable() const;
  // RESOURCE_EXHAUSTED when a build over n entries would exceed the budgets.
  absl::Status CheckBuildBudget(int64_t n) const;

  const CollectionConfig config_;
  const CollectionOptions options_;
  std::atomic<bool> cancelled_{false};
  // Set by Open only, before the collection is shared.
  std::string degraded_;

  mutable absl::Mutex control_mu_;
  int64_t max_version_ ABSL_GUARDED_BY(control_mu_) = 0;
  std::shared_ptr<Build> build_ ABSL_GUARDED_BY(control_mu_);
  std::thread build_thread_ ABSL_GUARDED_BY(control_mu_);
  // Failed builds and corrupt snapshots, by version.
  std::map<int64_t, std::string> failures_ ABSL_GUARDED_BY(control_mu_);

  mutable absl::Mutex staging_mu_ ABSL_ACQUIRED_AFTER(control_mu_);
  std::shared_ptr<const CollectionVersion> head_ ABSL_GUARDED_BY(staging_mu_);
  Delta delta_ ABSL_GUARDED_BY(staging_mu_);
  // The delta being built (read-only), for Status() counts.
  std::shared_ptr<const Delta> frozen_ ABSL_GUARDED_BY(staging_mu_);
  std::unique_ptr<StagingLog> log_ ABSL_GUARDED_BY(staging_mu_);

  mutable absl::Mutex versions_mu_ ABSL_ACQUIRED_AFTER(staging_mu_);
  std::map<int64_t, std::shared_ptr<const CollectionVersion>> loaded_
      ABSL_GUARDED_BY(versions_mu_);
  std::shared_ptr<const CollectionVersion> live_ ABSL_GUARDED_BY(versions_mu_);
};

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_COLLECTION_H_
