#include "trainer/data/interactions.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace recsys {

int64_t InteractionData::num_interactions() const {
  int64_t n = 0;
  for (const auto& s : sequences) n += static_cast<int64_t>(s.size());
  return n;
}

InteractionData FromKeySequences(
    std::vector<std::string> user_keys,
    const std::vector<std::vector<std::string>>& key_sequences) {
  InteractionData data;
  std::vector<std::string> keys;
  for (const auto& seq : key_sequences) keys.insert(keys.end(), seq.begin(), seq.end());
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  data.item_keys = std::move(keys);
  data.item_id.reserve(data.item_keys.size());
  for (size_t i = 0; i < data.item_keys.size(); ++i) {
    data.item_id[data.item_keys[i]] = static_cast<int32_t>(i);
  }
  data.user_keys = std::move(user_keys);
  data.sequences.reserve(key_sequences.size());
  for (const auto& seq : key_sequences) {
    std::vector<int32_t> ids;
    ids.reserve(seq.size());
    for (const auto& k : seq) ids.push_back(data.item_id.at(k));
    data.sequences.push_back(std::move(ids));
  }
  return data;
}

namespace {

absl::Status LineError(int line_no, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("interactions line ", line_no, ": ", what));
}

absl::StatusOr<InteractionData> ParseSequences(const std::string& contents) {
  std::vector<std::string> users;
  std::vector<std::vector<std::string>> seqs;
  absl::flat_hash_map<std::string, size_t> user_index;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, '\t');
    if (parts.size() != 2) {
      return LineError(line_no, "expected `user<TAB>item item ...`");
    }
    std::string user(absl::StripAsciiWhitespace(parts[0]));
    if (user.empty()) return LineError(line_no, "empty user key");
    auto [it, inserted] = user_index.emplace(user, users.size());
    if (inserted) {
      users.push_back(user);
      seqs.emplace_back();
    }
    for (absl::string_view item : absl::StrSplit(parts[1], ' ', absl::SkipWhitespace())) {
      seqs[it->second].emplace_back(absl::StripAsciiWhitespace(item));
    }
  }
  return FromKeySequences(std::move(users), seqs);
}

// A header row is recognised by name only: a first row whose timestamp is
// merely not a number (a date, a typo) is an error, not a header to drop.
bool IsTimestampColumnName(absl::string_view field) {
  return absl::EqualsIgnoreCase(field, "timestamp") || absl::EqualsIgnoreCase(field, "time") ||
         absl::EqualsIgnoreCase(field, "ts");
}

absl::StatusOr<InteractionData> ParseCsv(const std::string& contents) {
  struct Row {
    double ts;
    size_t order;
    std::string item;
  };
  std::vector<std::string> users;
  std::vector<std::vector<Row>> rows;
  absl::flat_hash_map<std::string, size_t> user_index;
  int line_no = 0;
  size_t order = 0;
  bool first = true;
  int first_line = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    if (first_line == 0) first_line = line_no;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ',');
    if (parts.size() != 3) {
      return LineError(line_no, "expected `user,item,timestamp`");
    }
    const absl::string_view ts_field = absl::StripAsciiWhitespace(parts[2]);
    if (first) {
      first = false;
      if (IsTimestampColumnName(ts_field)) continue;  // the header row
    }
    double ts;
    if (!absl::SimpleAtod(ts_field, &ts)) {
      return LineError(line_no, absl::StrCat(
          "timestamp \"", absl::CEscape(ts_field), "\" is not a number",
          line_no == first_line ? "; a header row is taken as one only when its third column "
                                  "is named timestamp, time or ts"
                                : ""));
    }
    if (!std::isfinite(ts)) {
      return LineError(line_no, absl::StrCat("timestamp \"", absl::CEscape(ts_field),
                                             "\" is not finite (expected a finite number)"));
    }
    std::string user(absl::StripAsciiWhitespace(parts[0]));
    std::string item(absl::StripAsciiWhitespace(parts[1]));
    if (user.empty() || item.empty()) return LineError(line_no, "empty key");
    auto [it, inserted] = user_index.emplace(user, users.size());
    if (inserted) {
      users.push_back(user);
      rows.emplace_back();
    }
    rows[it->second].push_back({ts, order++, std::move(item)});
  }
  std::vector<std::vector<std::string>> seqs(rows.size());
  for (size_t u = 0; u < rows.size(); ++u) {
    std::stable_sort(rows[u].begin(), rows[u].end(),
                     [](const Row& a, const Row& b) { return a.ts < b.ts; });
    for (auto& r : rows[u]) seqs[u].push_back(std::move(r.item));
  }
  return FromKeySequences(std::move(users), seqs);
}

}  // namespace

absl::StatusOr<InteractionData> ParseInteractions(const std::string& contents,
                                                  InteractionFormat format) {
  if (format == InteractionFormat::kAuto) {
    format = InteractionFormat::kSequences;
    for (absl::string_view line : absl::StrSplit(contents, '\n')) {
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      if (absl::StrContains(line, ',') && !absl::StrContains(line, '\t')) {
        format = InteractionFormat::kCsv;
      }
      break;
    }
  }
  return format == InteractionFormat::kCsv ? ParseCsv(contents)
                                           : ParseSequences(contents);
}

absl::StatusOr<InteractionData> LoadInteractions(const std::string& path,
                                                 InteractionFormat format) {
  ASSIGN_OR_RETURN(std::string contents, ReadFileToString(path));
  if (format == InteractionFormat::kAuto && absl::EndsWith(path, ".csv")) {
    format = InteractionFormat::kCsv;
  }
  return ParseInteractions(contents, format);
}

std::string Fingerprint(const InteractionData& data) {
  uint32_t a = 0, b = 0x9e3779b9u;
  for (const auto& k : data.item_keys) {
    a = Crc32c(k, a);
    a = Crc32c("\n", a);
  }
  for (size_t u = 0; u < data.sequences.size(); ++u) {
    b = Crc32c(data.user_keys[u], b);
    const auto& s = data.sequences[u];
    b = Crc32c(absl::string_view(reinterpret_cast<const char*>(s.data()),
                                 s.size() * sizeof(int32_t)),
               b);
  }
  return absl::StrFormat("%08x%08x-%d-%d-%d", a, b, data.num_users(),
                         data.num_items(), data.num_interactions());
}

}  // namespace recsys
