// The model versions a recommendation server can answer with.
//
// A background loop scans `models_dir` for version directories (named by
// their decimal version number, written complete-or-absent by the trainer's
// export), loads the newest `versions_to_keep` and the sidecar's live
// version (when it is older: newer versions written but never published, or
// a rollback past them, must not take it out of memory), and only then
// drops the others: during a rollout old and new versions both answer. A
// version whose directory is damaged is reported once and skipped.
//
// Which version is live follows the retrieval sidecar: a model version is
// servable only while the sidecar has the item collection version with the
// same number loaded, and the live model is the sidecar's live version when
// it is loaded here (so a rollback in the sidecar rolls the server back
// too), else the newest servable one. Without a sidecar check (tests, an
// offline tool) every loaded version is servable and the newest is live.
//
// Thread-safety: all methods are thread-safe. Readers take a reference to an
// immutable snapshot and never wait for a load.
#ifndef RECSYS_SERVER_MODEL_REGISTRY_H_
#define RECSYS_SERVER_MODEL_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/serving_model.h"

namespace recsys {

struct ServableVersions {
  std::set<int64_t> loaded;  // versions the sidecar can search
  int64_t live = 0;          // the sidecar's live version (0: none)
};

class ModelRegistry {
 public:
  struct Options {
    std::string models_dir;                           // required
    int versions_to_keep = 2;                         // newest N stay loaded (+ the live one)
    absl::Duration poll_interval = absl::Seconds(2);  // directory rescan
    // Asks the retrieval sidecar what it serves; nullptr: no check.
    std::function<absl::StatusOr<ServableVersions>()> servable;
    // Called after each refresh with the live version (0: none).
    std::function<void(int64_t live)> on_change;
  };

  // Runs one refresh synchronously, then starts the background loop.
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Create(Options options);
  ~ModelRegistry();  // Stops the loop.

  // One scan + load + live selection. Thread-safe; also run by the loop.
  void Refresh() ABSL_LOCKS_EXCLUDED(refresh_mu_, mu_);

  // version 0: the live version (UNAVAILABLE when there is none yet).
  // Otherwise that version if loaded and servable, else NOT_FOUND.
  absl::StatusOr<std::shared_ptr<const ServingModel>> Get(int64_t version) const
      ABSL_LOCKS_EXCLUDED(mu_);

  struct Entry {
    std::shared_ptr<const ServingModel> model;
    bool servable = false;
    bool live = false;
  };
  std::vector<Entry> List() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t live_version() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Snapshot {
    std::map<int64_t, std::shared_ptr<const ServingModel>> models;
    std::set<int64_t> servable;
    int64_t live = 0;
  };

  explicit ModelRegistry(Options options);
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  absl::Mutex refresh_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // one refresh at a time
  std::map<std::string, std::string> failed_ ABSL_GUARDED_BY(refresh_mu_);
  mutable absl::Mutex mu_;
  std::shared_ptr<const Snapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread loop_;
};

}  // namespace recsys

#endif  // RECSYS_SERVER_MODEL_REGISTRY_H_
