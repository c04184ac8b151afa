#include "retrieval/collection_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/user_input.h"

namespace recsys {
namespace retrieval {
namespace {
constexpr char kDroppedPrefix[] = ".dropped-";
constexpr char kLockFile[] = ".lock";  // collection names never start with '.'
}  // namespace

CollectionStore::LockFile::~LockFile() {
  if (fd >= 0) close(fd);
}

CollectionOptions CollectionStore::OptionsFor(const std::string& name) const {
  CollectionOptions o;
  o.dir = JoinPath(options_.data_dir, name);
  o.versions_to_keep = options_.versions_to_keep;
  o.build_threads = options_.build_threads;
  o.build_nice = options_.build_nice;
  o.limits = options_.limits;
  o.max_build_time = options_.max_build_time;
  o.max_build_bytes = options_.max_build_bytes;
  return o;
}

absl::StatusOr<std::unique_ptr<CollectionStore>> CollectionStore::Open(
    const Options& options) {
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("data_dir: expected a directory path");
  }
  // An unbounded count went to omp_set_num_threads at the first build.
  if (options.build_threads < 0 || options.build_threads > 256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "build_threads: expected 0..256 (0: all cores but one), got ", options.build_threads));
  }
  if (options.build_nice < 0 || options.build_nice > 19) {
    return absl::InvalidArgumentError(absl::StrCat(
        "build_nice: expected 0..19, got ", options.build_nice));
  }
  if (options.versions_to_keep < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "versions_to_keep: expected >= 1, got ", options.versions_to_keep));
  }
  RETURN_IF_ERROR(CreateDirectories(options.data_dir));
  auto store = std::unique_ptr<CollectionStore>(new CollectionStore(options));
  const std::string lock_path = JoinPath(options.data_dir, kLockFile);
  store->lock_.fd =
      open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (store->lock_.fd < 0) {
    return ErrnoToStatus(errno, absl::StrCat("open ", lock_path));
  }
  const int lock_error =
      flock(store->lock_.fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
  if (lock_error != 0 && lock_error != EWOULDBLOCK) {
    // A filesystem without flock (ENOLCK, EOPNOTSUPP): serve unguarded
    // rather than not at all.
    LOG(WARNING) << "cannot lock " << lock_path << " ("
                 << strerror(lock_error) << "): nothing stops a second "
                 << "server on " << options.data_dir;
  } else if (lock_error == EWOULDBLOCK) {
    auto holder = ReadFileToString(lock_path);
    return absl::FailedPreconditionError(absl::StrCat(
        "data_dir: '", options.data_dir,
        "' is in use by another retrieval server (pid ",
        holder.ok() ? std::string(absl::StripAsciiWhitespace(*holder)) : "?",
        " holds ", lock_path, "); stop it or choose another data_dir"));
  }
  // For operators reading the refusal above; the lock is what counts.
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(store->lock_.fd, 0) != 0 ||
      pwrite(store->lock_.fd, pid.data(), pid.size(), 0) !=
          static_cast<ssize_t>(pid.size())) {
    LOG(WARNING) << "could not write the pid into " << lock_path;
  }
  ASSIGN_OR_RETURN(std::vector<std::string> names,
                   ListDirectory(options.data_dir));
  for (const std::string& name : names) {
    const std::string dir = JoinPath(options.data_dir, name);
    if (absl::StartsWith(name, kDroppedPrefix)) {
      RETURN_IF_ERROR(RemoveRecursively(dir));  // a drop cut short
      continue;
    }
    if (!PathExists(JoinPath(dir, "collection.json"))) continue;
    absl::StatusOr<std::unique_ptr<Collection>> c =
        Collection::Open(store->OptionsFor(name));
    if (c.ok() && (*c)->config().name != name) {
      // collection.json is checksummed; this catches a directory renamed
      // or copied under another name.
      c = absl::DataLossError(absl::StrCat(
          dir, "/collection.json names collection ",
          QuoteUserInput((*c)->config().name), ", not its directory's name"));
    }
    if (!c.ok()) {
      std::string error = absl::StrCat("collection ", QuoteUserInput(name),
                                       " not restored: ", c.status().ToString());
      LOG(ERROR) << error;
      store->restore_errors_.push_back(error);
      absl::MutexLock l(&store->mu_);
      store->failed_[name] = std::move(error);
      continue;
    }
    absl::MutexLock l(&store->mu_);
    store->collections_[name] = std::shared_ptr<Collection>(std::move(*c));
  }
  return store;
}

absl::StatusOr<std::shared_ptr<Collection>> CollectionStore::Create(
    const CollectionConfig& config) {
  RETURN_IF_ERROR(ValidateConfig(config));
  absl::MutexLock admin(&admin_mu_);
  {
    absl::ReaderMutexLock l(&mu_);
    if (collections_.count(config.name)) {
      return absl::AlreadyExistsError(
          absl::StrCat("collection '", config.name, "' already exists"));
    }
    auto failed = failed_.find(config.name);
    if (failed != failed_.end()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "collection '", config.name, "' exists but is FAILED (",
          failed->second, "); drop it or restore its directory"));
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Collection> c,
                   Collection::Create(config, OptionsFor(config.name)));
  std::shared_ptr<Collection> shared(std::move(c));
  absl::MutexLock l(&mu_);
  collections_[config.name] = shared;
  return shared;
}

absl::StatusOr<std::shared_ptr<Collection>> CollectionStore::Get(
    const std::string& name) const {
  absl::ReaderMutexLock l(&mu_);
  auto it = collections_.find(name);
  if (it == collections_.end()) {
    auto failed = failed_.find(name);
    if (failed != failed_.end()) {
      return absl::FailedPreconditionError(failed->second);
    }
    return absl::NotFoundError(absl::StrCat(
        "collection: ", QuoteUserInput(name), " does not exist"));
  }
  return it->second;
}

std::map<std::string, std::string> CollectionStore::Failed() const {
  absl::ReaderMutexLock l(&mu_);
  return failed_;
}

absl::Status CollectionStore::Drop(const std::string& name) {
  absl::MutexLock admin(&admin_mu_);
  std::shared_ptr<Collection> c;
  {
    absl::MutexLock l(&mu_);
    auto it = collections_.find(name);
    if (it == collections_.end()) {
      if (failed_.erase(name) == 0) {
        return absl::NotFoundError(absl::StrCat(
            "collection: ", QuoteUserInput(name), " does not exist"));
      }
    } else {
      c = std::move(it->second);
      collections_.erase(it);
    }
  }
  if (c != nullptr) c->Shutdown();
  static std::atomic<int64_t> counter{0};
  const std::string trash = JoinPath(
      options_.data_dir, absl::StrCat(kDroppedPrefix, name, "-",
                                      absl::ToUnixMicros(absl::Now()), "-",
                                      counter++));
  RETURN_IF_ERROR(DurableRename(JoinPath(options_.data_dir, name), trash));
  RETURN_IF_ERROR(RemoveRecursively(trash));
  LOG(INFO) << "collection '" << name << "' dropped";
  return absl::OkStatus();
}

std::vector<std::shared_ptr<Collection>> CollectionStore::List() const {
  absl::ReaderMutexLock l(&mu_);
  std::vector<std::shared_ptr<Collection>> out;
  for (const auto& kv : collections_) out.push_back(kv.second);
  return out;
}

}  // namespace retrieval
}  // namespace recsys
