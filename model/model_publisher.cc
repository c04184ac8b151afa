#include "model/model_publisher.h"

#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "model/items_table.h"
#include "model/model_version.h"

namespace recsys {
namespace {

absl::StatusOr<absl::flat_hash_map<std::string, std::string>> ReadTitles(
    const std::string& path) {
  absl::flat_hash_map<std::string, std::string> titles;
  if (path.empty()) return titles;
  ASSIGN_OR_RETURN(std::vector<ItemTableRow> rows, ReadItemTable(path));
  titles.reserve(rows.size());
  for (ItemTableRow& row : rows) titles.emplace(std::move(row.key), DisplayTitle(row.value));
  return titles;
}

// The directory of the version the sidecar holds newest (below `version`),
// next to `version_dir`; empty when there is none.
absl::StatusOr<std::string> PreviousVersionDir(const std::string& version_dir, int64_t version,
                                               const std::string& collection,
                                               RetrievalClient* client) {
  ASSIGN_OR_RETURN(v1::ListVersionsResponse listed, client->ListVersions(collection));
  int64_t newest = 0;
  for (const v1::VersionInfo& v : listed.versions()) {
    if (v.version() < version && v.version() > newest) newest = v.version();
  }
  if (newest == 0) return std::string();
  std::string models_dir = version_dir;
  while (models_dir.size() > 1 && models_dir.back() == '/') models_dir.pop_back();
  const size_t slash = models_dir.find_last_of('/');
  models_dir = slash == std::string::npos ? "." : models_dir.substr(0, slash);
  const std::string dir = ModelVersionPath(models_dir, newest);
  return PathExists(dir) ? dir : std::string();
}

}  // namespace

absl::StatusOr<PublishResult> PublishModelVersion(const std::string& version_dir,
                                                  const PublishOptions& o,
                                                  RetrievalClient* client) {
  ASSIGN_OR_RETURN(std::unique_ptr<ModelVersion> version, ModelVersion::Open(version_dir));
  ASSIGN_OR_RETURN(ItemEmbeddings items, version->ReadItemEmbeddings());
  ASSIGN_OR_RETURN(auto titles, ReadTitles(o.items_table));
  PublishResult result;
  result.version = version->version();

  v1::CollectionConfig config;
  config.set_name(o.collection);
  config.set_dimension(static_cast<int32_t>(items.dim));
  config.set_metric(v1::METRIC_INNER_PRODUCT);
  config.set_index_factory(o.index_factory);
  config.set_flat_fallback_when_untrainable(true);
  RETURN_IF_ERROR(client->EnsureCollection(config).status());

  std::string previous = o.previous_version_dir;
  if (previous.empty()) {
    ASSIGN_OR_RETURN(previous,
                     PreviousVersionDir(version_dir, result.version, o.collection, client));
  }
  if (!previous.empty()) {
    ASSIGN_OR_RETURN(std::unique_ptr<ModelVersion> prev, ModelVersion::Open(previous));
    ASSIGN_OR_RETURN(ItemEmbeddings old_items, prev->ReadItemEmbeddings());
    const absl::flat_hash_set<std::string> now(items.keys.begin(), items.keys.end());
    std::vector<std::string> gone;
    for (const std::string& k : old_items.keys) {
      if (!now.contains(k)) gone.push_back(k);
    }
    if (!gone.empty()) {
      ASSIGN_OR_RETURN(result.deleted, client->Delete(o.collection, gone));
      LOG(INFO) << "deleted " << result.deleted << " items no longer in the catalog";
    }
  }

  for (const std::string& k : items.keys) result.titled += titles.contains(k) ? 1 : 0;
  const int64_t n = static_cast<int64_t>(items.keys.size());
  ASSIGN_OR_RETURN(
      result.upserted,
      client->UpsertAll(
          o.collection, n,
          [&](int64_t i, v1::Entry* e) {
            e->set_key(items.keys[i]);
            const float* v = items.values.data() + i * items.dim;
            e->mutable_vector()->mutable_values()->Add(v, v + items.dim);
            auto t = titles.find(items.keys[i]);
            if (t != titles.end()) (*e->mutable_payload())["title"] = t->second;
          },
          o.progress));

  // The staging set must hold exactly this version's items, or the new
  // collection version would serve keys the model does not have.
  ASSIGN_OR_RETURN(v1::CollectionInfo staged, client->Describe(o.collection));
  if (staged.staging_entry_count() != n) {
    return absl::FailedPreconditionError(absl::StrCat(
        "not publishing ", o.collection, " version ", result.version, ": its staging set holds ",
        staged.staging_entry_count(), " entries, model version ", version_dir, " has ", n,
        " items (give previous_version_dir, the version whose extra keys must go)"));
  }
  ASSIGN_OR_RETURN(result.live, client->PublishAndWait(o.collection, result.version));
  if (result.live.entry_count() != n) {
    return absl::FailedPreconditionError(absl::StrCat(
        o.collection, " version ", result.version, " holds ", result.live.entry_count(),
        " entries, but model version ", version_dir, " has ", n,
        " items"));
  }
  return result;
}

}  // namespace recsys
