#include "retrieval/staging_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
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

namespace {

// The record starting at byte `at` of `data`, when it is whole, passes its
// checksum and parses; its total size in *size.
bool ReadRecordAt(absl::string_view data, size_t at, int dimension,
                  StagingRecord* rec, size_t* size, bool* complete) {
  RecordReader r(data.substr(at));
  uint32_t len = 0, crc = 0;
  absl::string_view body;
  *complete = r.GetU32(&len) && r.GetU32(&crc) && r.GetBytes(len, &body);
  if (!*complete || Crc32c(body) != crc) return false;
  *rec = StagingRecord();
  if (!ParseBody(body, dimension, rec)) return false;
  *size = 8 + static_cast<size_t>(len);
  return true;
}

// The first offset after `at` where a valid record starts, or npos.
size_t NextValidRecord(absl::string_view data, size_t at, int dimension) {
  for (size_t j = at + 1; j + 8 <= data.size(); ++j) {
    StagingRecord rec;
    size_t size;
    bool complete;
    if (ReadRecordAt(data, j, dimension, &rec, &size, &complete)) return j;
  }
  return absl::string_view::npos;
}

// Reads the records of one file. A failing record with no valid record
// after it is a torn tail when it is the newest file's and either runs
// past the end of the file or is zero-filled (a crash between the size
// update and the data reaching disk): that append was never acknowledged.
// Any other failing record (valid records follow it, or it is in an older
// file, or a whole record fails its checksum) is corruption, reported in
// `report`; reading resumes at the next valid record.
void ReplayFile(const std::string& path, absl::string_view data, bool newest,
                int dimension, const std::function<void(StagingRecord)>& apply,
                StagingReplay* report, std::string* valid_records) {
  size_t at = 0;
  int64_t index = 0;
  while (at < data.size()) {
    StagingRecord rec;
    size_t size = 0;
    bool complete = false;
    if (ReadRecordAt(data, at, dimension, &rec, &size, &complete)) {
      if (valid_records != nullptr) valid_records->append(data.data() + at, size);
      apply(std::move(rec));
      ++report->records;
      ++index;
      at += size;
      continue;
    }
    const size_t next = NextValidRecord(data, at, dimension);
    const absl::string_view rest = data.substr(at);
    const bool all_zero =
        rest.find_first_not_of('\0') == absl::string_view::npos;
    if (next == absl::string_view::npos && newest && (!complete || all_zero)) {
      LOG(WARNING) << path << ": ignoring a torn last record (" << rest.size()
                   << " bytes after record " << index
                   << "): its append was never acknowledged";
      report->torn_tail_bytes += rest.size();
      return;
    }
    ++report->corrupt_records;
    if (report->corruption.empty()) {
      report->corruption = absl::StrCat(
          path, ": record ", index, " at byte ", at,
          complete ? " fails its checksum or does not parse" : " is cut short",
          next != absl::string_view::npos
              ? absl::StrCat(", valid records follow at byte ", next)
              : std::string(newest ? "" : " in a file that is not the newest"));
    }
    if (next == absl::string_view::npos) return;
    at = next;
    ++index;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<StagingLog>> StagingLog::Open(
    const std::string& dir, int dimension, int64_t covered_seq,
    const std::function<void(StagingRecord)>& apply, StagingReplay* report) {
  StagingReplay local;
  if (report == nullptr) report = &local;
  auto log = std::unique_ptr<StagingLog>(new StagingLog(dir, dimension));
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir));
  int64_t max_seq = covered_seq;
  std::vector<std::pair<int64_t, std::string>> live;
  for (const std::string& name : names) {  // sorted: zero-padded seq order
    int64_t seq;
    if (!ParseFileName(name, &seq)) continue;
    max_seq = std::max(max_seq, seq);
    const std::string path = JoinPath(dir, name);
    if (seq <= covered_seq) {
      RETURN_IF_ERROR(RemoveRecursively(path));
      continue;
    }
    live.emplace_back(seq, path);
  }
  for (size_t i = 0; i < live.size(); ++i) {
    const std::string& path = live[i].second;
    ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
    if (data.empty()) {
      // Opened by an earlier run that wrote nothing: without this every
      // restart would leave one more empty file behind.
      RETURN_IF_ERROR(RemoveRecursively(path));
      continue;
    }
    ReplayFile(path, data, /*newest=*/i + 1 == live.size(), dimension, apply,
               report, nullptr);
  }
  RETURN_IF_ERROR(log->OpenFile(max_seq + 1));
  return log;
}

absl::StatusOr<StagingReplay> StagingLog::Salvage(const std::string& dir,
                                                  int dimension,
                                                  int64_t covered_seq) {
  StagingReplay total;
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir));
  std::vector<std::string> live;
  for (const std::string& name : names) {
    int64_t seq;
    if (ParseFileName(name, &seq) && seq > covered_seq) {
      live.push_back(JoinPath(dir, name));
    }
  }
  for (size_t i = 0; i < live.size(); ++i) {
    ASSIGN_OR_RETURN(std::string data, ReadFileToString(live[i]));
    StagingReplay file;
    std::string valid;
    ReplayFile(live[i], data, i + 1 == live.size(), dimension,
               [](StagingRecord) {}, &file, &valid);
    total.records += file.records;
    total.corrupt_records += file.corrupt_records;
    total.torn_tail_bytes += file.torn_tail_bytes;
    if (file.corruption.empty()) continue;
    if (total.corruption.empty()) total.corruption = file.corruption;
    // Keep the damaged file for forensics under a name replay ignores.
    const std::string kept =
        absl::StrCat(live[i], ".corrupt-", absl::ToUnixSeconds(absl::Now()));
    RETURN_IF_ERROR(DurableRename(live[i], kept));
    RETURN_IF_ERROR(WriteFileAtomically(live[i], valid));
    LOG(WARNING) << live[i] << ": salvaged " << file.records
                 << " valid records, dropped " << file.corrupt_records
                 << " corrupt ones; the original is kept as " << kept;
  }
  RETURN_IF_ERROR(SyncPath(dir));
  return total;
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
