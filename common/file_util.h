// Durable file operations. Every write that is acknowledged to a caller goes
// through here: write to a temporary name, fsync the file, rename over the
// target, fsync the directory. A crash at any point leaves either the old
// file or the new one, never a torn one.
#ifndef RECSYS_COMMON_FILE_UTIL_H_
#define RECSYS_COMMON_FILE_UTIL_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys {

absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Atomically replaces `path` with `contents` (temp file, fsync, rename,
// fsync of the parent directory).
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

// The same for contents too large to hold in memory: `produce` is called once
// with an `append` function and writes the contents through it, in pieces.
// If either fails, `path` is left as it was and the temp file removed.
using AppendFunction = std::function<absl::Status(absl::string_view piece)>;
absl::Status WriteFileAtomicallyStreamed(
    const std::string& path, const std::function<absl::Status(const AppendFunction&)>& produce);

// fsyncs a file or directory by path.
absl::Status SyncPath(const std::string& path);

// Atomically renames `from` to `to` (same file system) and fsyncs the parent
// directory of `to`. With directories, this is how a version directory
// written under a temporary name becomes visible complete or not at all.
absl::Status DurableRename(const std::string& from, const std::string& to);

// mkdir -p.
absl::Status CreateDirectories(const std::string& path);

// rm -rf; a missing path is OK.
absl::Status RemoveRecursively(const std::string& path);

bool PathExists(const std::string& path);

// Names (not paths) of the entries of `dir`, sorted, without "." and "..".
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir);

std::string JoinPath(absl::string_view a, absl::string_view b);

// CRC-32C (Castagnoli) of `data`, for snapshot checksums.
uint32_t Crc32c(absl::string_view data, uint32_t seed = 0);

// Size and CRC-32C of a file, read in chunks (never held whole in memory);
// crc32c equals Crc32c() of the whole contents.
struct FileChecksum {
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
};
absl::StatusOr<FileChecksum> Crc32cOfFile(const std::string& path);

// An absl::Status for a failed system call: `what` plus strerror(errno),
// mapped to NOT_FOUND / PERMISSION_DENIED / RESOURCE_EXHAUSTED / INTERNAL.
absl::Status ErrnoToStatus(int err, absl::string_view what);

}  // namespace recsys

#endif  // RECSYS_COMMON_FILE_UTIL_H_
