// StagingLog: the entries of acknowledged Index batches that no published
// version holds yet (state_dir/<name>/staged-<V>.log, V the live version
// the batches are staged on). One record per batch: uint32 LE length,
// uint32 LE CRC-32C of the body, the body (a serialised StagedBatch);
// appended with one write(2) and fdatasync'd before Append returns, so
// before the caller acknowledges. A batch whose append fails is cut off
// again (ftruncate) and refused. The rules of retrieval's staging log:
// only a torn tail (the last record cut short or zero-filled, no valid
// record after it: an append that was never acknowledged) is dropped, with
// a warning, and cut off; any other failing record is damage, reported by
// Open (file, record, byte offset) with the file left as it is, and the
// owner refuses writes. After a Publish makes version W live, StartOver(W)
// makes staged-W.log (empty) and then deletes the older file: a crash in
// between leaves the record naming W live, so Open(W) drops the older file
// as covered.
//
// Thread-safety: not thread-safe; the owning collection serialises calls.
#ifndef RECSYS_SERVER_SIMILARITY_STAGING_LOG_H_
#define RECSYS_SERVER_SIMILARITY_STAGING_LOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/similarity/collection_record.pb.h"

namespace recsys {
namespace similarity {

// What StagingLog::Open found.
struct StagingReplay {
  int64_t records = 0;          // batches replayed
  int64_t torn_tail_bytes = 0;  // dropped as a torn tail
  std::string damage;           // "" when none; else file, record, offset
};

class StagingLog {
 public:
  // Replays staged-<live>.log in `dir` (batch by batch, in order, into
  // `apply`), deletes older staged-*.log files (covered by `live`), cuts a
  // torn tail off, and opens the file for appending (creating it when
  // missing). Damage does not fail Open: it is in report->damage, the
  // valid records around it are still replayed, and the file is untouched.
  static absl::StatusOr<std::unique_ptr<StagingLog>> Open(
      const std::string& dir, int64_t live,
      const std::function<void(StagedBatch)>& apply, StagingReplay* report);
  ~StagingLog();

  // Appends `batch` as one record and fdatasyncs it. On failure the file is
  // cut back to its previous length (or, if even that fails, every later
  // Append is refused).
  absl::Status Append(const StagedBatch& batch);
  // Version `live` went live holding every staged batch: start an empty
  // staged-<live>.log and delete the previous file.
  absl::Status StartOver(int64_t live);

  const std::string& path() const { return path_; }
  // Skips fdatasync in Append (the benchmark's "without the fsync" side
  // only; never set by the server).
  void set_sync_for_benchmark(bool sync) { sync_ = sync; }

 private:
  explicit StagingLog(std::string dir) : dir_(std::move(dir)) {}
  absl::Status OpenFile(int64_t live, bool empty);

  const std::string dir_;
  std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;
  std::string broken_;  // why Append is refused ("" when it is not)
  bool sync_ = true;
};

// The staging log's file name for batches staged on version `live`.
std::string StagingLogName(int64_t live);

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_STAGING_LOG_H_
