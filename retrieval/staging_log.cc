#include "retrieval/staging_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "retrieval/record_io.h"

namespace recsys {
namespace retrieval {
namespace {

constexpr uint8_t kUpsert = 1;
constexpr uint8_t kDelete = 2;
constexpr char kPrefix[] = "staging-";
constexpr char kSuffix[] = ".log";

std::string FileName(int64_t seq) {
  return absl::StrFormat("%s%012d%s", kPrefix, seq, kSuffix);
}

bool ParseFileName(const std::string& name, int64_t* seq) {
  if (!absl::StartsWith(name, kPrefix) || !absl::EndsWith(name, kSuffix)) {
    return false;
  }
  absl::string_view digits(name);
  digits.remove_prefix(sizeof(kPrefix) - 1);
  digits.remove_suffix(sizeof(kSuffix) - 1);
  return absl::SimpleAtoi(digits, seq);
}

bool ParseBody(absl::string_view body, int dimension, StagingRecord* rec) {
  RecordReader r(body);
  uint8_t type;
  uint32_t count;
  if (!r.GetU8(&type) || !r.GetU32(&count)) return false;
  if (type == kUpsert) {
    if (count > r.remaining() / (4 + 4 + 4 * dimension)) return false;
    rec->upserts.resize(count);
    for (Entry& e : rec->upserts) {
      e.vector.resize(dimension);
      if (!r.GetString(&e.key) || !r.GetFloats(e.vector.data(), dimension) ||
          !r.GetPayload(&e.payload)) {
        return false;
      }
    }
  } else if (type == kDelete) {
    if (count > r.remaining() / 4) return false;
    rec->deletes.resize(count);
    for (std::string& k : rec->deletes) {
      if (!r.GetString(&k)) return false;
    }
  } else {
    return false;
  }
  return r.done();
}

}  // namespace

absl::StatusOr<std::unique_ptr<StagingLog>> StagingLog::Open(
    const std::string& dir, int dimension, int64_t covered_seq,
    const std::function<void(StagingRecord)>& apply) {
  auto log = std::unique_ptr<StagingLog>(new StagingLog(dir, dimension));
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir));
  int64_t max_seq = covered_seq;
  for (const std::string& name : names) {  // sorted: zero-padded seq order
    int64_t seq;
    if (!ParseFileName(name, &seq)) continue;
    max_seq = std::max(max_seq, seq);
    const std::string path = JoinPath(dir, name);
    if (seq <= covered_seq) {
      RETURN_IF_ERROR(RemoveRecursively(path));
      continue;
    }
    ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
    if (data.empty()) {
      // Opened by an earlier run that wrote nothing: without this every
      // restart would leave one more empty file behind.
      RETURN_IF_ERROR(RemoveRecursively(path));
      continue;
    }
    RecordReader r(data);
    int64_t records = 0;
    while (!r.done()) {
      uint32_t len = 0, crc = 0;
      absl::string_view body;
      const size_t at = r.position();
      bool ok = r.GetU32(&len) && r.GetU32(&crc) && r.GetBytes(len, &body) &&
                Crc32c(body) == crc;
      StagingRecord rec;
      if (ok) ok = ParseBody(body, dimension, &rec);
      if (!ok) {
        LOG(WARNING) << path << ": ignoring " << (data.size() - at)
                     << " bytes after record " << records
                     << " (torn or corrupt tail)";
        break;
      }
      apply(std::move(rec));
      ++records;
    }
  }
  RETURN_IF_ERROR(log->OpenFile(max_seq + 1));
  return log;
}

StagingLog::~StagingLog() {
  if (fd_ >= 0) close(fd_);
}

absl::Status StagingLog::OpenFile(int64_t seq) {
  const std::string path = JoinPath(dir_, FileName(seq));
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path));
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
  seq_ = seq;
  return SyncPath(dir_);  // the new name is durable before records land in it
}

absl::Status StagingLog::AppendRecord(const std::string& body) {
  std::string record;
  RecordWriter w(&record);
  w.PutU32(static_cast<uint32_t>(body.size()));
  w.PutU32(Crc32c(body));
  record += body;
  size_t off = 0;
  while (off < record.size()) {
    ssize_t n = write(fd_, record.data() + off, record.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "append to the staging log");
    }
    off += static_cast<size_t>(n);
  }
  if (fdatasync(fd_) != 0) {
    return ErrnoToStatus(errno, "fdatasync the staging log");
  }
  return absl::OkStatus();
}

absl::Status StagingLog::AppendUpserts(absl::Span<const Entry> entries) {
  std::string body;
  RecordWriter w(&body);
  w.PutU8(kUpsert);
  w.PutU32(static_cast<uint32_t>(entries.size()));
  for (const Entry& e : entries) {
    w.PutString(e.key);
    w.PutFloats(e.vector.data(), e.vector.size());
    w.PutPayload(e.payload);
  }
  return AppendRecord(body);
}

absl::Status StagingLog::AppendDeletes(absl::Span<const std::string> keys) {
  std::string body;
  RecordWriter w(&body);
  w.PutU8(kDelete);
  w.PutU32(static_cast<uint32_t>(keys.size()));
  for (const std::string& k : keys) w.PutString(k);
  return AppendRecord(body);
}

absl::StatusOr<int64_t> StagingLog::Rotate() {
  const int64_t old = seq_;
  RETURN_IF_ERROR(OpenFile(seq_ + 1));
  return old;
}

absl::Status StagingLog::DropUpTo(int64_t seq) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir_));
  for (const std::string& name : names) {
    int64_t s;
    if (ParseFileName(name, &s) && s <= seq) {
      RETURN_IF_ERROR(RemoveRecursively(JoinPath(dir_, name)));
    }
  }
  return SyncPath(dir_);
}

}  // namespace retrieval
}  // namespace recsys
