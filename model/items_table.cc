#include "model/items_table.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "model/encoders/html_unescape.h"

namespace recsys {

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
  const std::string title = HtmlUnescape(raw);
  // Invalid bytes would make the payload unsendable as a proto string:
  // each becomes U+FFFD.
  std::string out;
  absl::string_view rest = title;
  size_t bad = 0;
  while (!IsValidUtf8(rest, &bad)) {
    out.append(rest.data(), bad);
    out.append("\xEF\xBF\xBD");
    rest.remove_prefix(bad + 1);
  }
  out.append(rest.data(), rest.size());
  if (out.size() <= max_bytes) return out;
  // Cut at a character boundary: never before a continuation byte.
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  return out;
}

}  // namespace recsys
