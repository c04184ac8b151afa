#include "server/similarity/stored_entries.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/little_endian.h"
#include "common/status_macros.h"

namespace recsys {
namespace similarity {
namespace {

constexpr char kMagic[] = "SIMENTS1";
constexpr size_t kMagicBytes = 8;
constexpr size_t kTrailerBytes = 12;  // uint64 count + uint32 crc
constexpr size_t kPieceBytes = 1 << 20;

}  // namespace

absl::Status WriteStoredEntries(const std::string& path, int64_t count,
                                const std::function<void(int64_t, StoredEntry*)>& fill) {
  return WriteFileAtomicallyStreamed(path, [&](const AppendFunction& append) -> absl::Status {
    std::string piece(kMagic, kMagicBytes);
    uint32_t crc = 0;
    auto flush = [&](bool always) -> absl::Status {
      if (piece.empty() || (!always && piece.size() < kPieceBytes)) return absl::OkStatus();
      crc = Crc32c(piece, crc);
      RETURN_IF_ERROR(append(piece));
      piece.clear();
      return absl::OkStatus();
    };
    StoredEntry entry;
    std::string bytes;
    for (int64_t i = 0; i < count; ++i) {
      entry.Clear();
      fill(i, &entry);
      bytes.clear();
      entry.SerializeToString(&bytes);
      AppendLittleEndian<uint32_t>(&piece, static_cast<uint32_t>(bytes.size()));
      piece += bytes;
      RETURN_IF_ERROR(flush(false));
    }
    AppendLittleEndian<uint64_t>(&piece, static_cast<uint64_t>(count));
    RETURN_IF_ERROR(flush(true));
    std::string trailer;
    AppendLittleEndian<uint32_t>(&trailer, crc);
    return append(trailer);
  });
}

absl::StatusOr<std::vector<StoredEntry>> ReadStoredEntries(const std::string& path) {
  if (!PathExists(path)) return absl::NotFoundError(absl::StrCat("no entries file ", path));
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  auto damaged = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(path, ": damaged entries file (", why, ")"));
  };
  if (bytes.size() < kMagicBytes + kTrailerBytes ||
      std::memcmp(bytes.data(), kMagic, kMagicBytes) != 0) {
    return damaged("no header or trailer");
  }
  const size_t end = bytes.size() - kTrailerBytes;
  const uint64_t count = ReadLittleEndian<uint64_t>(bytes.data() + end);
  const uint32_t crc = ReadLittleEndian<uint32_t>(bytes.data() + end + 8);
  if (Crc32c(absl::string_view(bytes).substr(0, end + 8)) != crc) return damaged("checksum");
  std::vector<StoredEntry> out;
  size_t at = kMagicBytes;
  while (at < end) {
    if (end - at < 4) return damaged("truncated record length");
    const uint32_t n = ReadLittleEndian<uint32_t>(bytes.data() + at);
    at += 4;
    if (n > end - at) return damaged("record past the end");
    StoredEntry e;
    if (!e.ParseFromArray(bytes.data() + at, static_cast<int>(n))) return damaged("record");
    out.push_back(std::move(e));
    at += n;
  }
  if (out.size() != count) return damaged("entry count");
  return out;
}

}  // namespace similarity
}  // namespace recsys
