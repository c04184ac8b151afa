#include "model/items_table.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "model/encoders/html_unescape.h"

namespace recsys {
namespace {

// Length of the valid UTF-8 sequence at s[i], or 0.
size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return 0;
  }
  if (n == 2 && c < 0xC2) return 0;  // overlong
  if (n == 3) {
    const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0)) return 0;  // overlong, surrogate
  }
  if (n == 4) {
    const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xF0 && c1 < 0x90) || c > 0xF4 || (c == 0xF4 && c1 >= 0x90)) return 0;
  }
  return n;
}

bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<ItemTableRow>> ParseItemTable(absl::string_view contents,
                                                         absl::string_view source) {
  std::vector<ItemTableRow> rows;
  absl::flat_hash_map<std::string, int64_t> line_of;
  int64_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t tab = line.find('\t');
    if (tab == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line_no, ": expected key<TAB>value, found no tab"));
    }
    const absl::string_view key = line.substr(0, tab);
    if (key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", line_no, ": empty key"));
    }
    if (!IsValidUtf8(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line_no, ": the key is not valid UTF-8"));
    }
    auto [it, inserted] = line_of.emplace(std::string(key), line_no);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ":", line_no, ": key '", key.substr(0, 64), "' repeats line ", it->second));
    }
    rows.push_back({std::string(key), std::string(line.substr(tab + 1))});
  }
  return rows;
}

absl::StatusOr<std::vector<ItemTableRow>> ReadItemTable(const std::string& path) {
  ASSIGN_OR_RETURN(std::string contents, ReadFileToString(path));
  return ParseItemTable(contents, path);
}

std::string DisplayTitle(absl::string_view raw, size_t max_bytes) {
  std::string title = HtmlUnescape(raw);
  // Invalid bytes would make the payload unsendable as a proto string.
  std::string out;
  out.reserve(std::min(title.size(), max_bytes));
  for (size_t i = 0; i < title.size();) {
    size_t n = Utf8SequenceLength(title, i);
    absl::string_view piece = n == 0 ? absl::string_view("\xEF\xBF\xBD") : absl::string_view(title).substr(i, n);
    if (out.size() + piece.size() > max_bytes) break;
    out.append(piece.data(), piece.size());
    i += n == 0 ? 1 : n;
  }
  return out;
}

}  // namespace recsys
