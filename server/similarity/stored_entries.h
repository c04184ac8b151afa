// The entries of a published similarity-collection version on disk
// (state_dir/<name>/v<N>.entries), so that a restarted server can refit a
// weight-free encoder on every entry and accept more Index calls.
//
// Layout: "SIMENTS1", then per entry a little-endian uint32 length and a
// serialised StoredEntry (collection_record.proto), then a trailer of the
// entry count (uint64 LE) and the CRC-32C (uint32 LE) of every byte before
// it. Written atomically (temp file, fsync, rename); a file whose checksum,
// count or records do not add up is DATA_LOSS when read, never half-used.
//
// Thread-safety: free functions over files; callers serialise writes to one
// path.
#ifndef RECSYS_SERVER_SIMILARITY_STORED_ENTRIES_H_
#define RECSYS_SERVER_SIMILARITY_STORED_ENTRIES_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/similarity/collection_record.pb.h"

namespace recsys {
namespace similarity {

// Writes `count` entries, entry i filled by fill(i, &entry).
absl::Status WriteStoredEntries(const std::string& path, int64_t count,
                                const std::function<void(int64_t, StoredEntry*)>& fill);

// NOT_FOUND when `path` does not exist; DATA_LOSS when it is damaged.
absl::StatusOr<std::vector<StoredEntry>> ReadStoredEntries(const std::string& path);

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_STORED_ENTRIES_H_
