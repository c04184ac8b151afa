#include "retrieval/collection.h"

#include <malloc.h>
#include <omp.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "retrieval/index_spec.h"
#include "retrieval/snapshot.h"

namespace recsys {
namespace retrieval {
namespace {

constexpr char kConfigFile[] = "collection.json";
constexpr char kLiveFile[] = "LIVE";
constexpr char kVersionsDir[] = "versions";

bool ParseVersionDir(absl::string_view name, int64_t* version) {
  if (!absl::ConsumePrefix(&name, "v") || name.size() != 20) return false;
  return absl::SimpleAtoi(name, version) && *version > 0;
}

}  // namespace

Collection::Collection(CollectionConfig config, CollectionOptions options)
    : config_(std::move(config)), options_(std::move(options)) {}

Collection::~Collection() { Shutdown(); }

void Collection::Shutdown() {
  cancelled_ = true;
  std::thread t;
  {
    absl::MutexLock l(&control_mu_);
    t = std::move(build_thread_);
  }
  if (t.joinable()) t.join();
}

std::string Collection::VersionDir(int64_t version) const {
  return JoinPath(JoinPath(options_.dir, kVersionsDir),
                  absl::StrFormat("v%020d", version));
}

absl::StatusOr<std::unique_ptr<Collection>> Collection::Create(
    const CollectionConfig& config, const CollectionOptions& options) {
  RETURN_IF_ERROR(ValidateConfig(config));
  if (PathExists(JoinPath(options.dir, kConfigFile))) {
    return absl::AlreadyExistsError(
        absl::StrCat("collection '", config.name, "' already exists"));
  }
  RETURN_IF_ERROR(CreateDirectories(JoinPath(options.dir, kVersionsDir)));
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(options.dir, kConfigFile),
                                      ConfigToJson(config)));
  return Open(options);
}

absl::StatusOr<std::unique_ptr<Collection>> Collection::Open(
    const CollectionOptions& options) {
  ASSIGN_OR_RETURN(std::string config_text,
                   ReadFileToString(JoinPath(options.dir, kConfigFile)));
  bool legacy_config = false;
  absl::StatusOr<CollectionConfig> parsed =
      ConfigFromJson(config_text, &legacy_config);
  if (!parsed.ok()) {
    return absl::DataLossError(
        absl::StrCat(options.dir, "/", parsed.status().message()));
  }
  CollectionConfig config = *std::move(parsed);
  // A config persisted by an older server that no longer validates is
  // refused, not built.
  if (absl::Status valid = ValidateConfig(config); !valid.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        options.dir, "/", kConfigFile,
        " holds a config this server does not support: ", valid.message()));
  }
  if (legacy_config) {
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(options.dir, kConfigFile),
                                        ConfigToJson(config)));
  }
  auto c = std::unique_ptr<Collection>(new Collection(config, options));

  int64_t live_version = 0;
  // Versions up to this one are not rolled forward (a Rollback chose an
  // older one).
  int64_t no_roll_forward_up_to = 0;
  if (PathExists(JoinPath(options.dir, kLiveFile))) {
    ASSIGN_OR_RETURN(std::string text,
                     ReadFileToString(JoinPath(options.dir, kLiveFile)));
    bool legacy_live = false;
    absl::StatusOr<LiveRecord> live = LiveFromJson(text, &legacy_live);
    if (!live.ok()) {
      return absl::DataLossError(
          absl::StrCat(options.dir, "/", live.status().message()));
    }
    live_version = live->version;
    no_roll_forward_up_to =
        live->rolled_back ? std::max(live->version, live->newest_at_rollback)
                          : live->version;
    if (legacy_live) {
      RETURN_IF_ERROR(WriteFileAtomically(JoinPath(options.dir, kLiveFile),
                                          LiveToJson(*live)));
    }
  }
  const std::string versions_dir = JoinPath(options.dir, kVersionsDir);
  RETURN_IF_ERROR(CreateDirectories(versions_dir));
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(versions_dir));
  std::vector<int64_t> on_disk;
  for (const std::string& name : names) {
    int64_t v;
    if (ParseVersionDir(name, &v)) {
      on_disk.push_back(v);
    } else {
      // A snapshot that never finished (crash before its rename).
      RETURN_IF_ERROR(RemoveRecursively(JoinPath(versions_dir, name)));
    }
  }
  std::sort(on_disk.rbegin(), on_disk.rend());
  if (live_version > 0 &&
      std::find(on_disk.begin(), on_disk.end(), live_version) == on_disk.end()) {
    return absl::DataLossError(absl::StrCat(
        options.dir, "/", kLiveFile, " names version ", live_version,
        ", which is not on disk"));
  }

  absl::MutexLock cl(&c->control_mu_);
  absl::MutexLock sl(&c->staging_mu_);
  absl::MutexLock vl(&c->versions_mu_);
  int good = 0;
  int64_t covered_seq = 0;
  for (int64_t v : on_disk) {
    c->max_version_ = std::max(c->max_version_, v);
    if (good >= options.versions_to_keep && v != live_version) {
      RETURN_IF_ERROR(RemoveRecursively(c->VersionDir(v)));
      continue;
    }
    absl::StatusOr<LoadedSnapshot> loaded =
        ReadSnapshot(c->VersionDir(v), config, /*expected_version=*/v);
    if (!loaded.ok()) {
      LOG(ERROR) << "collection '" << config.name << "' version " << v
                 << " not loaded: " << loaded.status();
      c->failures_[v] = std::string(loaded.status().message());
      continue;
    }
    if (covered_seq == 0) covered_seq = loaded->covered_log_seq;
    c->loaded_[v] = loaded->version;
    ++good;
  }
  if (!c->loaded_.empty() &&
      c->loaded_.rbegin()->first > std::max(live_version, no_roll_forward_up_to)) {
    // A complete, checksummed version newer than LIVE (and than every
    // version a Rollback stepped back from): a publish cut short between its snapshot's rename and the
    // LIVE update. Finish it (its writes were acknowledged and its log
    // files may be gone already); a client retrying that publish then gets
    // the same version back.
    const int64_t newest = c->loaded_.rbegin()->first;
    LOG(WARNING) << "collection '" << config.name << "': version " << newest
                 << " is complete but LIVE names " << live_version
                 << ": finishing its publish";
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(options.dir, kLiveFile),
                                        LiveToJson({newest, false})));
    live_version = newest;
  }
  if (live_version > 0) {
    auto it = c->loaded_.find(live_version);
    if (it != c->loaded_.end()) {
      c->live_ = it->second;
    } else {
      // The live version is unreadable: serve the newest good older one.
      for (auto rit = c->loaded_.rbegin(); rit != c->loaded_.rend(); ++rit) {
        if (rit->first < live_version) {
          c->live_ = rit->second;
          break;
        }
      }
      LOG(ERROR) << "collection '" << config.name << "': live version "
                 << live_version << " could not be loaded; serving "
                 << (c->live_ ? absl::StrCat("version ", c->live_->version())
                              : std::string("nothing"));
    }
  }
  // The staging base is what is live (Rollback resets it), or the newest
  // version when nothing is.
  c->head_ = c->live_ != nullptr ? c->live_
             : c->loaded_.empty() ? nullptr
                                  : c->loaded_.rbegin()->second;
  StagingReplay replay;
  ASSIGN_OR_RETURN(c->log_,
                   StagingLog::Open(options.dir, config.dimension, covered_seq,
                                    [&](StagingRecord rec) {
                                      c->staging_mu_.AssertHeld();
                                      for (Entry& e : rec.upserts) {
                                        c->delta_[e.key] = StagedEntry{
                                            std::move(e.vector),
                                            std::move(e.payload)};
                                      }
                                      for (std::string& k : rec.deletes) {
                                        c->delta_[k] = std::nullopt;
                                      }
                                    },
                                    &replay));
  if (!replay.corruption.empty()) {
    c->degraded_ = absl::StrCat(
        "staging log corrupt: ", replay.corruption, " (", replay.corrupt_records,
        " corrupt, ", replay.records,
        " valid records replayed); writes and publishes are refused until an "
        "operator salvages the valid records (retrieval_repair "
        "--salvage_staging_log) or restores the directory");
    LOG(ERROR) << "collection '" << config.name << "' DEGRADED: " << c->degraded_;
  }
  LOG(INFO) << "collection '" << config.name << "': " << c->loaded_.size()
            << " versions loaded, live "
            << (c->live_ ? c->live_->version() : 0) << ", "
            << c->delta_.size() << " staged changes replayed";
  return c;
}

absl::Status Collection::CheckWritable() const {
  if (degraded_.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "collection '", config_.name, "' is DEGRADED: ", degraded_));
}

absl::Status Collection::Upsert(std::vector<Entry> batch) {
  RETURN_IF_ERROR(CheckWritable());
  RETURN_IF_ERROR(ValidateBatch(config_, options_.limits, batch));
  if (batch.empty()) return absl::OkStatus();
  absl::MutexLock l(&staging_mu_);
  if (cancelled_) {
    return absl::FailedPreconditionError(
        absl::StrCat("collection '", config_.name, "' is being dropped"));
  }
  RETURN_IF_ERROR(log_->AppendUpserts(batch));
  for (Entry& e : batch) {
    delta_[std::move(e.key)] =
        StagedEntry{std::move(e.vector), std::move(e.payload)};
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Collection::Delete(const std::vector<std::string>& keys) {
  RETURN_IF_ERROR(CheckWritable());
  RETURN_IF_ERROR(ValidateKeys(options_.limits, "keys", keys));
  if (keys.empty()) return 0;
  absl::MutexLock l(&staging_mu_);
  if (cancelled_) {
    return absl::FailedPreconditionError(
        absl::StrCat("collection '", config_.name, "' is being dropped"));
  }
  RETURN_IF_ERROR(log_->AppendDeletes(keys));
  int64_t existed = 0;
  for (const std::string& k : keys) {
    auto it = delta_.find(k);
    bool exists;
    if (it != delta_.end()) {
      exists = it->second.has_value();
    } else if (frozen_ != nullptr && frozen_->contains(k)) {
      exists = frozen_->at(k).has_value();
    } else {
      exists = head_ != nullptr && head_->Find(k).has_value();
    }
    existed += exists ? 1 : 0;
    delta_[k] = std::nullopt;
  }
  return existed;
}

std::vector<std::optional<Entry>> Collection::GetStaged(
    const std::vector<std::string>& keys) const {
  std::vector<std::optional<Entry>> out;
  out.reserve(keys.size());
  absl::MutexLock l(&staging_mu_);
  // Newest first: writes since the build started, then the build's own.
  const Delta* deltas[] = {&delta_, frozen_.get()};
  for (const std::string& key : keys) {
    bool staged = false;
    for (const Delta* d : deltas) {
      if (d == nullptr) continue;
      auto it = d->find(key);
      if (it == d->end()) continue;
      const std::optional<StagedEntry>& e = it->second;  // nullopt: deleted
      out.push_back(e.has_value()
                        ? std::optional<Entry>(Entry{key, e->vector, e->payload})
                        : std::nullopt);
      staged = true;
      break;
    }
    if (staged) continue;
    std::optional<int64_t> id =
        head_ != nullptr ? head_->Find(key) : std::nullopt;
    if (!id.has_value()) {
      out.push_back(std::nullopt);
      continue;
    }
    auto v = head_->vector(*id);
    out.push_back(Entry{key, std::vector<float>(v.begin(), v.end()),
                        head_->payload(*id)});
  }
  return out;
}

absl::StatusOr<VersionStatus> Collection::Publish(int64_t version,
                                                  PublishCallback done) {
  absl::MutexLock cl(&control_mu_);
  if (cancelled_) {
    return absl::FailedPreconditionError(
        absl::StrCat("collection '", config_.name, "' is being dropped"));
  }
  if (build_ != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "collection '", config_.name, "': version ", build_->version,
        " is still building; publish again when it is done"));
  }
  RETURN_IF_ERROR(CheckWritable());
  if (version != 0 && version <= max_version_) {
    // A retry of a publish whose answer was lost (or cut short by a crash:
    // Open finishes those): the same version with nothing staged since is
    // the same content, so the answer is that version, live.
    absl::MutexLock sl(&staging_mu_);
    std::shared_ptr<const CollectionVersion> existing;
    {
      absl::ReaderMutexLock vl(&versions_mu_);
      auto it = loaded_.find(version);
      if (it != loaded_.end()) existing = it->second;
    }
    if (existing != nullptr && existing == head_ && delta_.empty()) {
      std::shared_ptr<const CollectionVersion> live;
      {
        absl::ReaderMutexLock vl(&versions_mu_);
        live = live_;
      }
      if (live != existing) {
        RETURN_IF_ERROR(WriteFileAtomically(JoinPath(options_.dir, kLiveFile),
                                            LiveToJson({version, false})));
        absl::MutexLock vl(&versions_mu_);
        live_ = existing;
      }
      VersionStatus st = StatusOf(*existing, /*live=*/true);
      if (done) done(st);
      return st;
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "version: expected a number above ", max_version_,
        " (the newest version of '", config_.name, "'), got ", version,
        existing == nullptr
            ? std::string(" (not loaded)")
            : absl::StrCat(
                  "; version ", version, " exists, complete, with ",
                  existing->size(), " entries",
                  delta_.empty() ? std::string(" but is not the staging base")
                                 : absl::StrCat(", and ", delta_.size(),
                                                " changes are staged since"),
                  ": Rollback to it to serve it, or publish a new number")));
  }
  if (version == 0) version = max_version_ + 1;
  std::shared_ptr<Delta> frozen;
  std::shared_ptr<const CollectionVersion> base;
  int64_t frozen_seq;
  {
    absl::MutexLock sl(&staging_mu_);
    ASSIGN_OR_RETURN(frozen_seq, log_->Rotate());
    frozen = std::make_shared<Delta>(std::move(delta_));
    delta_ = Delta();
    frozen_ = frozen;
    base = head_;
  }
  max_version_ = version;
  auto build = std::make_shared<Build>();
  build->version = version;
  ProgressTracker::Options po;
  po.name = absl::StrCat(config_.name, " v", version);
  po.unit = "vectors";
  build->progress = std::make_unique<ProgressTracker>(po);
  build->progress->Start(0, "merging");
  build_ = build;
  if (build_thread_.joinable()) build_thread_.join();  // a finished build
  build_thread_ = std::thread(&Collection::RunBuild, this, version,
                              std::move(base), std::move(frozen), frozen_seq,
                              std::move(done));
  VersionStatus s;
  s.version = version;
  s.state = VersionState::kBuilding;
  s.index_description = config_.index_factory;
  s.progress = build->progress->Snapshot();
  return s;
}

absl::StatusOr<VersionStatus> Collection::PublishAndWait(int64_t version) {
  absl::Mutex mu;
  bool finished = false;
  absl::StatusOr<VersionStatus> result;
  absl::StatusOr<VersionStatus> started =
      Publish(version, [&](absl::StatusOr<VersionStatus> r) {
        absl::MutexLock l(&mu);
        result = std::move(r);
        finished = true;
      });
  if (!started.ok()) return started.status();
  absl::MutexLock l(&mu);
  mu.Await(absl::Condition(&finished));
  return result;
}

void Collection::RunBuild(int64_t version,
                          std::shared_ptr<const CollectionVersion> base,
                          std::shared_ptr<Delta> frozen, int64_t frozen_seq,
                          PublishCallback done) {
  // Per-thread settings. A lower priority (a higher nice value, inherited
  // by the OpenMP workers this thread starts) lets searches preempt the
  // build at once; the build's OpenMP loops leave a core to searches.
  // Only ever lowered: a server already run under `nice` keeps its value.
  const id_t tid = static_cast<id_t>(syscall(SYS_gettid));
  if (options_.build_nice > getpriority(PRIO_PROCESS, tid) &&
      setpriority(PRIO_PROCESS, tid, options_.build_nice) != 0) {
    LOG(WARNING) << "build of '" << config_.name
                 << "': setpriority failed: " << strerror(errno);
  }
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  omp_set_num_threads(options_.build_threads > 0
                          ? options_.build_threads
                          : std::max(1, cores - 1));
  std::shared_ptr<Build> build;
  {
    absl::MutexLock cl(&control_mu_);
    build = build_;
  }
  ProgressTracker& progress = *build->progress;
  const int d = config_.dimension;

  // head + frozen delta -> the new version's entries: the base's surviving
  // entries keep their order, new keys follow in key order.
  EntryTable table;
  if (base != nullptr) {
    table.keys.reserve(base->size() + frozen->size());
    table.payloads.reserve(base->size() + frozen->size());
    table.vectors.reserve((base->size() + frozen->size()) * d);
    for (int64_t i = 0; i < base->size(); ++i) {
      if (frozen->contains(base->key(i))) continue;
      table.keys.emplace_back(base->key(i));
      table.payloads.push_back(base->payload(i));
      auto v = base->vector(i);
      table.vectors.insert(table.vectors.end(), v.begin(), v.end());
    }
  }
  std::vector<const std::pair<const std::string, std::optional<StagedEntry>>*>
      added;
  for (const auto& kv : *frozen) {
    if (kv.second.has_value()) added.push_back(&kv);
  }
  std::sort(added.begin(), added.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  for (const auto* kv : added) {
    table.keys.push_back(kv->first);
    table.payloads.push_back(kv->second->payload);
    table.vectors.insert(table.vectors.end(), kv->second->vector.begin(),
                         kv->second->vector.end());
  }
  progress.Start(static_cast<int64_t>(table.keys.size()), "building index");

  // What is stored must be finite (a log written by an older server, or a
  // base version loaded from disk, never went through today's checks).
  absl::Status status = CheckStoredVectors(
      config_, table.vectors, absl::StrCat("version ", version));
  if (status.ok()) status = CheckBuildBudget(static_cast<int64_t>(table.keys.size()));
  const absl::Time deadline = absl::Now() + options_.max_build_time;
  bool out_of_time = false;
  absl::StatusOr<std::shared_ptr<const CollectionVersion>> built =
      absl::CancelledError("not built");
  if (status.ok()) {
    built = CollectionVersion::Build(
        version, config_, std::move(table),
        [&](int64_t n, int64_t total, absl::string_view phase) {
          if (total > 0) {
            progress.SetPhase(std::string(phase));
            progress.Update(n);
          }
          if (absl::Now() > deadline) out_of_time = true;
          return !cancelled_.load() && !out_of_time;
        });
    status = built.status();
    if (out_of_time && !status.ok()) {
      status = absl::DeadlineExceededError(absl::StrCat(
          "the build of version ", version, " exceeded its time budget of ",
          absl::FormatDuration(options_.max_build_time),
          " (--max_build_seconds) and was stopped"));
    }
  }
  if (status.ok()) {
    progress.SetPhase("writing snapshot");
    status = WriteSnapshot(VersionDir(version), **built, frozen_seq);
  }
  absl::StatusOr<VersionStatus> result;
  {
    absl::MutexLock cl(&control_mu_);
    if (status.ok()) status = FinishPublish(*built, frozen_seq);
    if (status.ok()) {
      result = StatusOf(**built, /*live=*/true);
    } else {
      LOG(ERROR) << "collection '" << config_.name << "' version " << version
                 << " failed: " << status;
      failures_[version] = std::string(status.message());
      absl::MutexLock sl(&staging_mu_);
      // Writes made during the build are newer: they win over the frozen
      // delta, which goes back under them.
      for (auto& kv : *frozen) delta_.try_emplace(kv.first, std::move(kv.second));
      frozen_ = nullptr;
      result = status;
    }
    build_ = nullptr;
  }
  progress.Finish();
  // A build frees large transient buffers (the merged entry table, the
  // serialized index, the frozen delta) across several malloc arenas;
  // glibc keeps them unless asked, and RSS would grow by a few times the
  // collection's size on every publish.
  frozen.reset();
  base.reset();
  built = absl::StatusOr<std::shared_ptr<const CollectionVersion>>();
  malloc_trim(0);
  if (done) done(std::move(result));
}

absl::Status Collection::CheckBuildBudget(int64_t n) const {
  absl::StatusOr<IndexSpec> spec =
      ParseIndexSpec(config_.index_factory, config_.dimension);
  if (!spec.ok()) return spec.status();
  int64_t n_train = n;
  if (config_.max_training_vectors > 0) {
    n_train = std::min(n_train, config_.max_training_vectors);
  }
  int64_t budget = options_.max_build_bytes;
  if (budget <= 0) {
    budget = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) *
             sysconf(_SC_PAGESIZE) / 2;
  }
  const int64_t bytes = EstimateBuildBytes(*spec, config_.dimension, n, n_train);
  if (bytes > budget) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "building '", config_.index_factory, "' over ", n, " vectors of ",
        config_.dimension, " dimensions needs about ", bytes >> 20,
        " MB, over the build budget of ", budget >> 20,
        " MB (--max_build_mb)"));
  }
  // Training runs inside one FAISS call; its cost is known up front. At a
  // conservative 1 GFLOP/s per build thread, refuse what cannot finish in
  // the time budget rather than start it.
  const double flops =
      EstimateTrainingFlops(*spec, config_.dimension, n_train);
  const double seconds = flops / 1e9;
  if (seconds > absl::ToDoubleSeconds(options_.max_build_time)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "training '", config_.index_factory, "' on ", n_train,
        " vectors would take about ", static_cast<int64_t>(seconds),
        " s, over the build time budget of ",
        absl::FormatDuration(options_.max_build_time),
        "; lower nlist or max_training_vectors"));
  }
  return absl::OkStatus();
}

absl::Status Collection::FinishPublish(std::shared_ptr<const CollectionVersion> v,
                                       int64_t frozen_seq) {
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(options_.dir, kLiveFile),
                                      LiveToJson({v->version(), false})));
  std::vector<std::string> unloaded;
  {
    absl::MutexLock sl(&staging_mu_);
    head_ = v;
    frozen_ = nullptr;
    absl::Status s = log_->DropUpTo(frozen_seq);
    if (!s.ok()) {
      // Harmless for correctness: replaying covered files is skipped by seq.
      LOG(WARNING) << "could not drop staging logs: " << s;
    }
    absl::MutexLock vl(&versions_mu_);
    loaded_[v->version()] = v;
    live_ = v;
    unloaded = CollectGarbageLocked();
  }
  for (const std::string& dir : unloaded) {
    absl::Status s = RemoveRecursively(dir);
    if (!s.ok()) LOG(WARNING) << "could not remove " << dir << ": " << s;
  }
  LOG(INFO) << "collection '" << config_.name << "': version " << v->version()
            << " live with " << v->size() << " entries";
  return absl::OkStatus();
}

std::vector<std::string> Collection::CollectGarbageLocked() {
  std::vector<std::string> dirs;
  int kept = 0;
  for (auto it = loaded_.rbegin(); it != loaded_.rend();) {
    const bool keep = kept < options_.versions_to_keep || it->second == live_;
    if (keep) {
      ++kept;
      ++it;
    } else {
      dirs.push_back(VersionDir(it->first));
      it = decltype(it)(loaded_.erase(std::next(it).base()));
    }
  }
  return dirs;
}

absl::StatusOr<VersionStatus> Collection::Rollback(int64_t version) {
  absl::MutexLock cl(&control_mu_);
  std::shared_ptr<const CollectionVersion> target;
  {
    absl::ReaderMutexLock vl(&versions_mu_);
    auto it = loaded_.find(version);
    if (it == loaded_.end()) {
      std::vector<int64_t> have;
      for (const auto& kv : loaded_) have.push_back(kv.first);
      return absl::NotFoundError(absl::StrCat(
          "version: ", version, " of '", config_.name,
          "' is not loaded; loaded versions: [", absl::StrJoin(have, ", "),
          "]"));
    }
    target = it->second;
  }
  if (build_ != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "collection '", config_.name, "': version ", build_->version,
        " is building on the current base; roll back when it is done"));
  }
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(options_.dir, kLiveFile),
                                      LiveToJson({version, true, max_version_})));
  {
    // "Reset to v": the next Publish builds on v plus what is staged, so
    // entries of newer versions do not come back. Those versions stay
    // loaded (a Rollback to one of them resets to it).
    absl::MutexLock sl(&staging_mu_);
    head_ = target;
    absl::MutexLock vl(&versions_mu_);
    live_ = target;
  }
  LOG(INFO) << "collection '" << config_.name << "': rolled back to version "
            << version;
  return StatusOf(*target, true);
}

absl::StatusOr<std::shared_ptr<const CollectionVersion>> Collection::GetVersion(
    int64_t version) const {
  {
    absl::ReaderMutexLock vl(&versions_mu_);
    if (version == 0) {
      if (live_ != nullptr) return live_;
      return absl::FailedPreconditionError(absl::StrCat(
          "collection '", config_.name, "' has no published version yet"));
    }
    auto it = loaded_.find(version);
    if (it != loaded_.end()) return it->second;
  }
  absl::MutexLock cl(&control_mu_);
  if (build_ != nullptr && build_->version == version) {
    return absl::UnavailableError(absl::StrCat(
        "version ", version, " of '", config_.name, "' is still building"));
  }
  return absl::NotFoundError(absl::StrCat("version: ", version, " of '",
                                          config_.name, "' is not loaded"));
}

VersionStatus Collection::StatusOf(const CollectionVersion& v, bool live) const {
  VersionStatus s;
  s.version = v.version();
  s.state = live ? VersionState::kLive : VersionState::kReady;
  s.entries = v.size();
  s.memory_bytes = v.memory_bytes();
  s.index_description = v.index().description();
  s.created = v.created();
  return s;
}

CollectionStatus Collection::Status() const {
  CollectionStatus out;
  out.config = config_;
  out.error = degraded_;
  std::map<int64_t, VersionStatus> by_version;
  {
    absl::MutexLock cl(&control_mu_);
    for (const auto& [v, error] : failures_) {
      VersionStatus s;
      s.version = v;
      s.state = VersionState::kFailed;
      s.error = error;
      by_version[v] = s;
    }
    if (build_ != nullptr) {
      VersionStatus s;
      s.version = build_->version;
      s.state = VersionState::kBuilding;
      s.index_description = config_.index_factory;
      s.progress = build_->progress->Snapshot();
      by_version[s.version] = s;
    }
    absl::MutexLock sl(&staging_mu_);
    // Entries of head + frozen + delta, counted without materialising them.
    int64_t count = head_ != nullptr ? head_->size() : 0;
    auto exists_below = [&](const std::string& key, bool check_frozen) {
      if (check_frozen && frozen_ != nullptr) {
        auto it = frozen_->find(key);
        if (it != frozen_->end()) return it->second.has_value();
      }
      return head_ != nullptr && head_->Find(key).has_value();
    };
    if (frozen_ != nullptr) {
      for (const auto& [key, e] : *frozen_) {
        if (delta_.contains(key)) continue;
        count += (e.has_value() ? 1 : 0) - (exists_below(key, false) ? 1 : 0);
      }
    }
    for (const auto& [key, e] : delta_) {
      count += (e.has_value() ? 1 : 0) - (exists_below(key, true) ? 1 : 0);
    }
    out.staging_entries = count;
    out.pending_changes = static_cast<int64_t>(delta_.size()) +
                          (frozen_ != nullptr ? frozen_->size() : 0);
    absl::ReaderMutexLock vl(&versions_mu_);
    out.live_version = live_ != nullptr ? live_->version() : 0;
    for (const auto& [v, version] : loaded_) {
      by_version[v] = StatusOf(*version, version == live_);
    }
  }
  for (auto& kv : by_version) out.versions.push_back(std::move(kv.second));
  return out;
}

}  // namespace retrieval
}  // namespace recsys
