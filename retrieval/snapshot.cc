#include "retrieval/snapshot.h"

#include <limits>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "common/user_input.h"
#include "retrieval/record_io.h"

namespace recsys {
namespace retrieval {
namespace {

constexpr char kManifest[] = "MANIFEST.json";
constexpr char kIndexFile[] = "index.faiss";
constexpr char kEntriesFile[] = "entries.bin";
constexpr char kVectorsFile[] = "vectors.bin";
constexpr uint32_t kEntriesMagic = 0x52454e54;  // "RENT"

using nlohmann::json;

// Every JSON file the store reads back carries "crc32c": the CRC-32C of
// its own compact dump without that member (nlohmann::json orders keys, so
// the dump is canonical). A digit edited anywhere is refused.
constexpr char kCrcField[] = "crc32c";

std::string Seal(json j) {
  j.erase(kCrcField);
  const uint32_t crc = Crc32c(j.dump());
  j[kCrcField] = crc;
  return j.dump(2) + "\n";
}

// Files written before sealing (by the server of main at 62393ee) have no
// checksum. They are read when their members are exactly that format's
// (so a sealed file whose "crc32c" name was damaged is not taken for
// one), and the reader rewrites them sealed at once.
const std::set<std::string>& LegacyConfigKeys() {
  static const auto* k = new std::set<std::string>{
      "name", "dimension", "metric", "index_factory", "max_training_vectors",
      "flat_fallback_when_untrainable", "build_params"};
  return *k;
}
const std::set<std::string>& LegacyManifestKeys() {
  static const auto* k = new std::set<std::string>{
      "format", "version", "entries", "dimension", "index_description",
      "created_unix_micros", "covered_log_seq", "files"};
  return *k;
}

absl::StatusOr<json> Unseal(absl::string_view text, absl::string_view what,
                            const std::set<std::string>* legacy_keys = nullptr,
                            bool* legacy = nullptr) {
  json j = json::parse(text.begin(), text.end(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(
        absl::StrCat(what, " is not valid JSON: refusing to load it"));
  }
  if (!j.contains(kCrcField) && legacy_keys != nullptr) {
    std::set<std::string> keys;
    for (const auto& kv : j.items()) keys.insert(kv.key());
    if (keys == *legacy_keys) {
      *legacy = true;
      return j;
    }
  }
  if (!j.contains(kCrcField) || !j[kCrcField].is_number_unsigned()) {
    return absl::DataLossError(
        absl::StrCat(what, " has no crc32c: refusing to load it"));
  }
  const uint64_t expected = j[kCrcField].get<uint64_t>();
  j.erase(kCrcField);
  const uint32_t actual = Crc32c(j.dump());
  if (actual != expected) {
    return absl::DataLossError(absl::StrCat(
        what, " fails its checksum (crc32c ", actual, ", recorded ", expected,
        "): refusing to load it"));
  }
  return j;
}

absl::Status WriteChecked(const std::string& dir, const std::string& name,
                          const std::string& contents, json& files) {
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, name), contents));
  files[name] = {{"size", contents.size()}, {"crc32c", Crc32c(contents)}};
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadChecked(const std::string& dir,
                                        const std::string& name,
                                        const json& files) {
  if (!files.contains(name) || !files[name].is_object()) {
    return absl::DataLossError(
        absl::StrCat(dir, "/", kManifest, " does not list ", name));
  }
  ASSIGN_OR_RETURN(std::string contents,
                   ReadFileToString(JoinPath(dir, name)));
  const uint64_t size = files[name].value("size", uint64_t{0});
  const uint32_t crc = files[name].value("crc32c", uint32_t{0});
  if (contents.size() != size) {
    return absl::DataLossError(absl::StrCat(
        "snapshot file ", dir, "/", name, " has ", contents.size(),
        " bytes, the manifest says ", size, ": refusing to load it"));
  }
  const uint32_t actual = Crc32c(contents);
  if (actual != crc) {
    return absl::DataLossError(absl::StrCat(
        "snapshot file ", dir, "/", name, " fails its checksum (crc32c ",
        actual, ", manifest ", crc, "): refusing to load it"));
  }
  return contents;
}

}  // namespace

absl::Status WriteSnapshot(const std::string& dir,
                           const CollectionVersion& version,
                           int64_t covered_log_seq) {
  const std::string tmp = absl::StrCat(dir, ".tmp");
  RETURN_IF_ERROR(RemoveRecursively(tmp));
  RETURN_IF_ERROR(CreateDirectories(tmp));
  json files = json::object();
  {
    ASSIGN_OR_RETURN(std::string index_bytes, version.index().Serialize());
    RETURN_IF_ERROR(WriteChecked(tmp, kIndexFile, index_bytes, files));
  }
  {
    std::string entries;
    RecordWriter w(&entries);
    w.PutU32(kEntriesMagic);
    w.PutU64(version.size());
    for (int64_t i = 0; i < version.size(); ++i) {
      w.PutString(version.key(i));
      w.PutPayload(version.payload(i));
    }
    RETURN_IF_ERROR(WriteChecked(tmp, kEntriesFile, entries, files));
  }
  if (version.keeps_own_vectors()) {
    std::string vectors;
    RecordWriter w(&vectors);
    for (int64_t i = 0; i < version.size(); ++i) {
      auto v = version.vector(i);
      w.PutFloats(v.data(), v.size());
    }
    RETURN_IF_ERROR(WriteChecked(tmp, kVectorsFile, vectors, files));
  }
  json manifest = {
      {"format", 2},
      {"version", version.version()},
      {"entries", version.size()},
      {"dimension", version.config().dimension},
      {"index_description", version.index().description()},
      {"created_unix_micros", absl::ToUnixMicros(version.created())},
      {"covered_log_seq", covered_log_seq},
      {"files", files},
  };
  RETURN_IF_ERROR(
      WriteFileAtomically(JoinPath(tmp, kManifest), Seal(manifest)));
  RETURN_IF_ERROR(SyncPath(tmp));
  return DurableRename(tmp, dir);
}

absl::StatusOr<LoadedSnapshot> ReadSnapshot(const std::string& dir,
                                            const CollectionConfig& config,
                                            int64_t expected_version) {
  ASSIGN_OR_RETURN(std::string manifest_text,
                   ReadFileToString(JoinPath(dir, kManifest)));
  bool legacy = false;
  ASSIGN_OR_RETURN(json manifest,
                   Unseal(manifest_text,
                          absl::StrCat("snapshot manifest ", dir, "/", kManifest),
                          &LegacyManifestKeys(), &legacy));
  if (!manifest.contains("files") || !manifest["files"].is_object() ||
      manifest.value("format", 0) != (legacy ? 1 : 2)) {
    return absl::DataLossError(absl::StrCat(
        "snapshot manifest ", dir, "/", kManifest,
        " lacks files or format 2: refusing to load it"));
  }
  const json& files = manifest["files"];
  int64_t version = 0, n = -1, covered = -1;
  try {
    version = manifest.at("version").get<int64_t>();
    n = manifest.at("entries").get<int64_t>();
    covered = manifest.at("covered_log_seq").get<int64_t>();
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("snapshot manifest ", dir, "/",
                                            kManifest, ": ", e.what()));
  }
  if (manifest.value("dimension", 0) != config.dimension || n < 0 ||
      version <= 0 || covered < 0) {
    return absl::DataLossError(absl::StrCat(
        "snapshot manifest ", dir, "/", kManifest,
        " disagrees with the collection (dimension ", config.dimension, ")"));
  }
  if (expected_version != 0 && version != expected_version) {
    return absl::DataLossError(absl::StrCat(
        "snapshot manifest ", dir, "/", kManifest, " says version ", version,
        " but its directory is version ", expected_version,
        ": refusing to load it"));
  }

  EntryTable table;
  {
    ASSIGN_OR_RETURN(std::string entries, ReadChecked(dir, kEntriesFile, files));
    RecordReader r(entries);
    uint32_t magic = 0;
    uint64_t count = 0;
    if (!r.GetU32(&magic) || magic != kEntriesMagic || !r.GetU64(&count) ||
        count != static_cast<uint64_t>(n)) {
      return absl::DataLossError(absl::StrCat(dir, "/", kEntriesFile,
                                              ": bad header"));
    }
    table.keys.resize(n);
    table.payloads.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      if (!r.GetString(&table.keys[i]) || !r.GetPayload(&table.payloads[i])) {
        return absl::DataLossError(
            absl::StrCat(dir, "/", kEntriesFile, ": truncated at entry ", i));
      }
    }
  }
  std::unique_ptr<VectorIndex> index;
  {
    ASSIGN_OR_RETURN(std::string bytes, ReadChecked(dir, kIndexFile, files));
    CollectionConfig as_built = config;
    as_built.index_factory =
        manifest.value("index_description", config.index_factory);
    ASSIGN_OR_RETURN(index, VectorIndex::Deserialize(as_built, bytes));
  }
  if (files.contains(kVectorsFile)) {
    ASSIGN_OR_RETURN(std::string bytes, ReadChecked(dir, kVectorsFile, files));
    if (bytes.size() != static_cast<size_t>(n) * config.dimension * 4) {
      return absl::DataLossError(absl::StrCat(dir, "/", kVectorsFile,
                                              ": wrong size"));
    }
    table.vectors.resize(static_cast<size_t>(n) * config.dimension);
    std::memcpy(table.vectors.data(), bytes.data(), bytes.size());
  }
  if (const float* rows = index->raw_vectors()) {
    RETURN_IF_ERROR(CheckStoredVectors(
        config, absl::MakeConstSpan(rows, static_cast<size_t>(n) * config.dimension),
        absl::StrCat("snapshot ", dir)));
  }
  if (index->size() != n) {
    return absl::DataLossError(absl::StrCat(dir, "/", kIndexFile, " holds ",
                                            index->size(), " vectors, the manifest says ", n));
  }
  RETURN_IF_ERROR(CheckStoredVectors(config, table.vectors,
                                     absl::StrCat("snapshot ", dir)));
  LoadedSnapshot out;
  out.covered_log_seq = covered;
  if (legacy) {
    // Verified against its files and its directory: seal it now.
    ASSIGN_OR_RETURN(std::string sealed, SealLegacyJson(manifest_text, kManifest));
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, kManifest), sealed));
  }
  ASSIGN_OR_RETURN(
      out.version,
      CollectionVersion::Assemble(
          version, config, std::move(table), std::move(index),
          absl::FromUnixMicros(manifest.value("created_unix_micros", int64_t{0}))));
  return out;
}

std::string ConfigToJson(const CollectionConfig& config) {
  json j = {
      {"name", config.name},
      {"dimension", config.dimension},
      {"metric", std::string(MetricName(config.metric))},
      {"index_factory", config.index_factory},
      {"max_training_vectors", config.max_training_vectors},
      {"flat_fallback_when_untrainable", config.flat_fallback_when_untrainable},
      {"build_params", config.build_params},
  };
  return Seal(j);
}

absl::StatusOr<CollectionConfig> ConfigFromJson(absl::string_view text,
                                                 bool* legacy) {
  bool is_legacy = false;
  ASSIGN_OR_RETURN(json j, Unseal(text, "collection.json", &LegacyConfigKeys(),
                                  &is_legacy));
  if (legacy != nullptr) *legacy = is_legacy;
  CollectionConfig c;
  try {
    c.name = j.at("name").get<std::string>();
    c.dimension = j.at("dimension").get<int>();
    const std::string metric = j.at("metric").get<std::string>();
    if (metric == "inner_product") {
      c.metric = Metric::kInnerProduct;
    } else if (metric == "l2") {
      c.metric = Metric::kL2;
    } else if (metric == "cosine") {
      c.metric = Metric::kCosine;
    } else {
      return absl::DataLossError(
          absl::StrCat("collection.json: unknown metric ", QuoteUserInput(metric)));
    }
    c.index_factory = j.at("index_factory").get<std::string>();
    c.max_training_vectors = j.at("max_training_vectors").get<int64_t>();
    c.flat_fallback_when_untrainable =
        j.at("flat_fallback_when_untrainable").get<bool>();
    c.build_params =
        j.at("build_params").get<std::map<std::string, std::string>>();
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("collection.json: ", e.what()));
  }
  return c;
}

absl::StatusOr<std::string> SealLegacyJson(absl::string_view text,
                                           absl::string_view what) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(absl::StrCat(what, " is not valid JSON"));
  }
  if (j.contains(kCrcField)) {
    return absl::FailedPreconditionError(absl::StrCat(what, " is sealed already"));
  }
  if (j.contains("files")) {  // a manifest of format 1: same members
    if (j.value("format", 0) != 1) {
      return absl::DataLossError(absl::StrCat(what, ": unknown format"));
    }
    j["format"] = 2;
  }
  return Seal(std::move(j));
}

std::string LiveToJson(const LiveRecord& live) {
  return Seal(json{{"live", live.version},
                   {"rolled_back", live.rolled_back},
                   {"newest_at_rollback", live.newest_at_rollback}});
}

absl::StatusOr<LiveRecord> LiveFromJson(absl::string_view text, bool* legacy) {
  if (legacy != nullptr) *legacy = false;
  // The format before sealing: the version alone, in canonical decimal
  // ("13\n"); "03" or " 13" are damage, not that format.
  absl::string_view digits = text;
  absl::ConsumeSuffix(&digits, "\n");
  int64_t v = 0;
  if (!digits.empty() && digits.size() <= 18 && digits[0] != '0' &&
      digits.find_first_not_of("0123456789") == absl::string_view::npos &&
      absl::SimpleAtoi(digits, &v)) {
    if (legacy != nullptr) *legacy = true;
    LiveRecord r;
    r.version = v;
    // An old server never rolled forward: keep what it served.
    r.rolled_back = true;
    r.newest_at_rollback = std::numeric_limits<int64_t>::max();
    return r;
  }
  ASSIGN_OR_RETURN(json j, Unseal(text, "LIVE"));
  LiveRecord r;
  try {
    r.version = j.at("live").get<int64_t>();
    r.rolled_back = j.at("rolled_back").get<bool>();
    r.newest_at_rollback = j.at("newest_at_rollback").get<int64_t>();
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("LIVE: ", e.what()));
  }
  if (r.version <= 0) {
    return absl::DataLossError(absl::StrCat("LIVE: version ", r.version));
  }
  return r;
}

}  // namespace retrieval
}  // namespace recsys
