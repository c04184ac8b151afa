#include "server/similarity/staging_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/little_endian.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace recsys {
namespace similarity {
namespace {

constexpr char kLogPrefix[] = "staged-";
constexpr char kLogSuffix[] = ".log";
constexpr size_t kLogHeaderBytes = 8;  // uint32 length + uint32 crc

bool ParseLogName(const std::string& name, int64_t* live) {
  if (!absl::StartsWith(name, kLogPrefix) || !absl::EndsWith(name, kLogSuffix)) return false;
  absl::string_view digits(name);
  digits.remove_prefix(sizeof(kLogPrefix) - 1);
  digits.remove_suffix(sizeof(kLogSuffix) - 1);
  return absl::SimpleAtoi(digits, live);
}

// The record at byte `at` of `data` when it is whole, passes its checksum
// and parses (its size in *size); *complete says whether its length fits.
bool LogRecordAt(absl::string_view data, size_t at, StagedBatch* batch, size_t* size,
                 bool* complete) {
  *complete = false;
  if (data.size() - at < kLogHeaderBytes) return false;
  const uint32_t n = ReadLittleEndian<uint32_t>(data.data() + at);
  const uint32_t crc = ReadLittleEndian<uint32_t>(data.data() + at + 4);
  if (n > data.size() - at - kLogHeaderBytes) return false;
  *complete = true;
  const absl::string_view body = data.substr(at + kLogHeaderBytes, n);
  if (Crc32c(body) != crc) return false;
  batch->Clear();
  // An empty body with checksum 0 is what zero-filled bytes read as: no
  // batch is empty (Append is never called with one).
  if (!batch->ParseFromArray(body.data(), static_cast<int>(body.size())) ||
      batch->entries_size() == 0) {
    return false;
  }
  *size = kLogHeaderBytes + n;
  return true;
}

size_t NextLogRecord(absl::string_view data, size_t at) {
  StagedBatch batch;
  for (size_t j = at + 1; j + kLogHeaderBytes <= data.size(); ++j) {
    size_t size = 0;
    bool complete = false;
    if (LogRecordAt(data, j, &batch, &size, &complete)) return j;
  }
  return absl::string_view::npos;
}

}  // namespace

std::string StagingLogName(int64_t live) { return absl::StrCat(kLogPrefix, live, kLogSuffix); }

absl::StatusOr<std::unique_ptr<StagingLog>> StagingLog::Open(
    const std::string& dir, int64_t live, const std::function<void(StagedBatch)>& apply,
    StagingReplay* report) {
  std::unique_ptr<StagingLog> log(new StagingLog(dir));
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir));
  for (const std::string& name : names) {
    int64_t v = 0;
    if (!ParseLogName(name, &v) || v == live) continue;
    if (v < live) {  // every batch in it is in version `live`
      RETURN_IF_ERROR(RemoveRecursively(JoinPath(dir, name)));
    } else {
      LOG(WARNING) << JoinPath(dir, name) << ": staged on version " << v
                   << ", which never went live (the live version is " << live
                   << "); left as it is, not replayed";
    }
  }
  const std::string path = JoinPath(dir, StagingLogName(live));
  int64_t keep = -1;  // bytes to keep when a torn tail is cut off
  if (PathExists(path)) {
    ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
    size_t at = 0;
    int64_t index = 0;
    while (at < data.size()) {
      StagedBatch batch;
      size_t size = 0;
      bool complete = false;
      if (LogRecordAt(data, at, &batch, &size, &complete)) {
        apply(std::move(batch));
        ++report->records;
        ++index;
        at += size;
        continue;
      }
      const size_t next = NextLogRecord(data, at);
      const absl::string_view rest = absl::string_view(data).substr(at);
      const bool zeros = rest.find_first_not_of('\0') == absl::string_view::npos;
      if (next == absl::string_view::npos && (!complete || zeros)) {
        LOG(WARNING) << path << ": dropping a torn last record (" << rest.size()
                     << " bytes after record " << index
                     << "): its append was never acknowledged";
        report->torn_tail_bytes = static_cast<int64_t>(rest.size());
        keep = static_cast<int64_t>(at);
        break;
      }
      if (report->damage.empty()) {
        report->damage = absl::StrCat(
            path, ": record ", index, " at byte ", at,
            complete ? " fails its checksum or does not parse" : " is cut short",
            next != absl::string_view::npos ? absl::StrCat(" (valid records follow at byte ", next, ")")
                                            : std::string());
      }
      if (next == absl::string_view::npos) break;
      at = next;
      ++index;
    }
    if (!report->damage.empty()) keep = -1;  // leave a damaged file as it is
    if (keep >= 0 && truncate(path.c_str(), keep) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("cut the torn tail off ", path));
    }
  }
  RETURN_IF_ERROR(log->OpenFile(live, /*empty=*/false));
  if (keep >= 0) RETURN_IF_ERROR(SyncPath(path));
  return log;
}

StagingLog::~StagingLog() {
  if (fd_ >= 0) close(fd_);
}

absl::Status StagingLog::OpenFile(int64_t live, bool empty) {
  const std::string path = JoinPath(dir_, StagingLogName(live));
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (empty ? O_TRUNC : 0), 0644);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path));
  const off_t end = lseek(fd, 0, SEEK_END);
  if (end < 0) {
    const int err = errno;
    close(fd);
    return ErrnoToStatus(err, absl::StrCat("seek ", path));
  }
  // The new name is durable before records land in it.
  const absl::Status synced = SyncPath(dir_);
  if (!synced.ok()) {
    close(fd);
    return synced;
  }
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
  path_ = path;
  size_ = end;
  broken_.clear();
  return absl::OkStatus();
}

absl::Status StagingLog::Append(const StagedBatch& batch) {
  if (!broken_.empty()) return absl::FailedPreconditionError(broken_);
  if (batch.entries_size() == 0) return absl::InvalidArgumentError("an empty staged batch");
  std::string body = batch.SerializeAsString();
  std::string record;
  AppendLittleEndian<uint32_t>(&record, static_cast<uint32_t>(body.size()));
  AppendLittleEndian<uint32_t>(&record, Crc32c(body));
  record += body;
  absl::Status s;
  size_t off = 0;
  while (off < record.size()) {
    const ssize_t n = write(fd_, record.data() + off, record.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      s = ErrnoToStatus(errno, absl::StrCat("append to ", path_));
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (s.ok() && sync_ && fdatasync(fd_) != 0) {
    s = ErrnoToStatus(errno, absl::StrCat("fdatasync ", path_));
  }
  if (s.ok()) {
    size_ += static_cast<int64_t>(record.size());
    return s;
  }
  // Cut the refused batch off, so that a restart does not replay it.
  if (ftruncate(fd_, size_) != 0 || fdatasync(fd_) != 0) {
    broken_ = absl::StrCat(path_, ": a failed append could not be cut off (", s.message(),
                           "); restart the server");
  }
  return s;
}

absl::Status StagingLog::StartOver(int64_t live) {
  const std::string previous = path_;
  const absl::Status opened = OpenFile(live, /*empty=*/true);
  if (!opened.ok()) {
    // Appends to the old file would be dropped at the next start.
    broken_ = absl::StrCat("could not start the staging log of version ", live, " (",
                           opened.message(), "); restart the server");
    return opened;
  }
  if (previous != path_) {
    RETURN_IF_ERROR(RemoveRecursively(previous));
    RETURN_IF_ERROR(SyncPath(dir_));
  }
  return absl::OkStatus();
}

}  // namespace similarity
}  // namespace recsys
