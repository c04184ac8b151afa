// Snapshots: one published version on disk, complete or absent.
//
//   <dir>/MANIFEST.json  version, entry count, index description, creation
//                        time, the staging-log sequence it covers, the
//                        size and CRC-32C of every other file, and its own
//                        CRC-32C (member "crc32c")
//   <dir>/index.faiss    faiss::write_index
//   <dir>/entries.bin    keys and payloads, in id order
//   <dir>/vectors.bin    raw vectors, only when the index cannot give them
//
// WriteSnapshot writes everything under a temporary sibling name, fsyncs,
// and renames it to `dir` (DurableRename): a crash leaves no `dir` or a
// complete one. ReadSnapshot verifies sizes and checksums before parsing and
// returns DATA_LOSS naming the file on any mismatch (the manifest's own
// checksum, its version against the directory's, every file's checksum,
// non-finite stored vectors), so a corrupted snapshot is reported and never
// served.
//
// collection.json and LIVE are sealed the same way (a "crc32c" member over
// the rest of the JSON). Files written before sealing (server of main at
// 62393ee) are read when they have exactly that format's members, after
// the same cross-checks, and sealed in place (ReadSnapshot seals a format-1
// manifest once its files verify; Collection::Open seals collection.json
// and LIVE), so newer servers read what older ones wrote.
//
// Thread-safety: functions of their arguments only.
#ifndef RECSYS_RETRIEVAL_SNAPSHOT_H_
#define RECSYS_RETRIEVAL_SNAPSHOT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "retrieval/collection_config.h"
#include "retrieval/collection_version.h"

namespace recsys {
namespace retrieval {

struct LoadedSnapshot {
  std::shared_ptr<const CollectionVersion> version;
  // Staging-log files with a sequence number <= this are contained in it.
  int64_t covered_log_seq = 0;
};

absl::Status WriteSnapshot(const std::string& dir,
                           const CollectionVersion& version,
                           int64_t covered_log_seq);

// `expected_version` (the directory's number; 0: not checked) must equal
// the manifest's.
absl::StatusOr<LoadedSnapshot> ReadSnapshot(const std::string& dir,
                                            const CollectionConfig& config,
                                            int64_t expected_version = 0);

// The LIVE file: which version is served, and whether an operator's
// Rollback chose it (the versions it rolled back from are then not rolled
// forward at restart; see collection.h).
struct LiveRecord {
  int64_t version = 0;
  bool rolled_back = false;
  // With rolled_back: the newest version at the time of the Rollback. Only
  // versions above it (a later publish cut short) are rolled forward.
  int64_t newest_at_rollback = 0;
};
std::string LiveToJson(const LiveRecord& live);

// The operator's upgrade of a file written before files were sealed
// (collection.json, a format-1 MANIFEST.json): the same JSON with its
// checksum added. FAILED_PRECONDITION when it is sealed already.
absl::StatusOr<std::string> SealLegacyJson(absl::string_view text,
                                           absl::string_view what);
// Also reads the format before sealing (the number alone, canonical
// decimal), setting *legacy: the caller rewrites it sealed.
absl::StatusOr<LiveRecord> LiveFromJson(absl::string_view text,
                                        bool* legacy = nullptr);

// The collection's config as JSON (collection.json) and back.
std::string ConfigToJson(const CollectionConfig& config);
// Also reads a collection.json written before sealing (exactly that
// format's members), setting *legacy: the caller rewrites it sealed.
absl::StatusOr<CollectionConfig> ConfigFromJson(absl::string_view json,
                                                bool* legacy = nullptr);

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_SNAPSHOT_H_
