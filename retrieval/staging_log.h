// StagingLog: the durable record of acknowledged writes that are not yet in
// a published version. Append-only files "staging-<seq>.log" in a
// collection's directory; each record is one whole upsert batch or delete
// request: [u32 length][u32 crc32c][body], appended with one write(2) and
// fdatasync'd before Append returns (so before the caller acks). Replay
// never applies part of a record. Only a torn tail is discarded silently:
// the last record of the newest file cut short or zero-filled (a crash
// mid-append leaves at most that unacknowledged record). Any other failing
// record (a checksum mismatch followed by more data, damage in an older
// file) is corruption: it is reported in StagingReplay, the records around
// it are still replayed, and the owner refuses writes until an operator
// salvages (Salvage) or restores the directory.
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

// What replaying found.
struct StagingReplay {
  int64_t records = 0;          // applied
  int64_t corrupt_records = 0;  // skipped (or unreadable rest of a file: 1)
  int64_t torn_tail_bytes = 0;  // discarded as a torn tail
  std::string corruption;       // first corruption, empty when none
};

class StagingLog {
 public:
  // Replays every staging-<seq>.log in `dir` with seq > `covered_seq` in
  // order, calling `apply` per record, deletes the files with seq <=
  // covered_seq and the empty ones, and opens a fresh file with a sequence number above all.
  // Corruption does not fail Open: it is reported in *report (may be null).
  static absl::StatusOr<std::unique_ptr<StagingLog>> Open(
      const std::string& dir, int dimension, int64_t covered_seq,
      const std::function<void(StagingRecord)>& apply,
      StagingReplay* report = nullptr);

  // The operator's salvage, with no log open on `dir`: every file with a
  // corrupt record is rewritten with only its valid records (the original
  // kept as <name>.corrupt-<unix time>). Returns what was kept and dropped.
  static absl::StatusOr<StagingReplay> Salvage(const std::string& dir,
                                               int dimension,
                                               int64_t covered_seq);
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
