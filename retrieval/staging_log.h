// StagingLog: the durable record of acknowledged writes that are not yet in
// a published version. Append-only files "staging-<seq>.log" in a
// collection's directory; each record is one whole upsert batch or delete
// request: [u32 length][u32 crc32c][body], appended with one write(2) and
// fdatasync'd before Append returns (so before the caller acks). Replay
// stops at the first torn or corrupt record of a file (a crash mid-append
// leaves at most the unacknowledged last one) and never applies part of a
// record.
//
// Publish rotates to a new file; the old file is deleted once a version
// that covers it is on disk (see Collection).
//
// Thread-safety: not thread-safe; the owning Collection serialises calls.
#ifndef RECSYS_RETRIEVAL_STAGING_LOG_H_
#define RECSYS_RETRIEVAL_STAGING_LOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "retrieval/collection_config.h"

namespace recsys {
namespace retrieval {

// One replayed record: an upsert batch or a delete.
struct StagingRecord {
  std::vector<Entry> upserts;
  std::vector<std::string> deletes;
};

class StagingLog {
 public:
  // Replays every staging-<seq>.log in `dir` with seq > `covered_seq` in
  // order, calling `apply` per record, deletes the files with seq <=
  // covered_seq and the empty ones, and opens a fresh file with a sequence
  // number above all.
  static absl::StatusOr<std::unique_ptr<StagingLog>> Open(
      const std::string& dir, int dimension, int64_t covered_seq,
      const std::function<void(StagingRecord)>& apply);
  ~StagingLog();

  absl::Status AppendUpserts(absl::Span<const Entry> entries);
  absl::Status AppendDeletes(absl::Span<const std::string> keys);

  // Closes the current file and starts seq()+1. Returns the sequence number
  // of the file just closed.
  absl::StatusOr<int64_t> Rotate();
  // Deletes the files with sequence numbers <= seq.
  absl::Status DropUpTo(int64_t seq);

  int64_t seq() const { return seq_; }

 private:
  StagingLog(std::string dir, int dimension) : dir_(std::move(dir)), dimension_(dimension) {}
  absl::Status OpenFile(int64_t seq);
  absl::Status AppendRecord(const std::string& body);

  const std::string dir_;
  const int dimension_;
  int fd_ = -1;
  int64_t seq_ = 0;
};

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_STAGING_LOG_H_
