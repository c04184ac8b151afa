#include "retrieval/collection_store.h"

#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace recsys {
namespace retrieval {
namespace {
constexpr char kDroppedPrefix[] = ".dropped-";
}  // namespace

CollectionOptions CollectionStore::OptionsFor(const std::string& name) const {
  CollectionOptions o;
  o.dir = JoinPath(options_.data_dir, name);
  o.versions_to_keep = options_.versions_to_keep;
  o.build_threads = options_.build_threads;
  o.build_nice = options_.build_nice;
  o.limits = options_.limits;
  return o;
}

absl::StatusOr<std::unique_ptr<CollectionStore>> CollectionStore::Open(
    const Options& options) {
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("data_dir: expected a directory path");
  }
  if (options.build_threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "build_threads: expected >= 0, got ", options.build_threads));
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
  ASSIGN_OR_RETURN(std::vector<std::string> names,
                   ListDirectory(options.data_dir));
  for (const std::string& name : names) {
    const std::string dir = JoinPath(options.data_dir, name);
    if (absl::StartsWith(name, kDroppedPrefix)) {
      RETURN_IF_ERROR(RemoveRecursively(dir));  // a drop cut short
      continue;
    }
    if (!PathExists(JoinPath(dir, "collection.json"))) continue;
    auto c = Collection::Open(store->OptionsFor(name));
    if (!c.ok()) {
      std::string error = absl::StrCat("collection '", name,
                                       "' not restored: ", c.status().ToString());
      LOG(ERROR) << error;
      store->restore_errors_.push_back(std::move(error));
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
    return absl::NotFoundError(
        absl::StrCat("collection: '", name, "' does not exist"));
  }
  return it->second;
}

absl::Status CollectionStore::Drop(const std::string& name) {
  absl::MutexLock admin(&admin_mu_);
  std::shared_ptr<Collection> c;
  {
    absl::MutexLock l(&mu_);
    auto it = collections_.find(name);
    if (it == collections_.end()) {
      return absl::NotFoundError(
          absl::StrCat("collection: '", name, "' does not exist"));
    }
    c = std::move(it->second);
    collections_.erase(it);
  }
  c->Shutdown();
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
