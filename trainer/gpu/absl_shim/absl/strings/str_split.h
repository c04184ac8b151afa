// Shim (see absl/README): StrSplit by a char or a string, optionally
// dropping empty or all-whitespace pieces; the result iterates as
// string_views and converts to vector<string_view> or vector<string>.
#ifndef RECSYS_ABSL_SHIM_STR_SPLIT_H_
#define RECSYS_ABSL_SHIM_STR_SPLIT_H_
#include "absl/strings/string_view.h"
#include <string>
#include <string_view>
#include <vector>
#include "absl/strings/ascii.h"
namespace absl {
struct AllowEmpty {
  bool operator()(std::string_view) const { return true; }
};
struct SkipEmpty {
  bool operator()(std::string_view s) const { return !s.empty(); }
};
struct SkipWhitespace {
  bool operator()(std::string_view s) const { return !StripAsciiWhitespace(s).empty(); }
};
class SplitResult {
 public:
  explicit SplitResult(std::vector<std::string_view> parts) : parts_(std::move(parts)) {}
  auto begin() const { return parts_.begin(); }
  auto end() const { return parts_.end(); }
  operator std::vector<std::string_view>() const { return parts_; }
  operator std::vector<std::string>() const { return {parts_.begin(), parts_.end()}; }
 private:
  std::vector<std::string_view> parts_;
};
template <typename Pred = AllowEmpty>
SplitResult StrSplit(std::string_view text, std::string_view delim, Pred keep = Pred()) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t at = delim.empty() ? (start + 1 <= text.size() ? start + 1 : text.npos)
                                    : text.find(delim, start);
    std::string_view piece = text.substr(start, at == text.npos ? text.npos : at - start);
    if (keep(piece)) parts.push_back(piece);
    if (at == text.npos || at >= text.size()) break;
    start = at + (delim.empty() ? 0 : delim.size());
  }
  return SplitResult(std::move(parts));
}
template <typename Pred = AllowEmpty>
SplitResult StrSplit(std::string_view text, char delim, Pred keep = Pred()) {
  return StrSplit(text, std::string_view(&delim, 1), keep);
}
template <typename Pred = AllowEmpty>
SplitResult StrSplit(std::string_view text, const char* delim, Pred keep = Pred()) {
  return StrSplit(text, std::string_view(delim), keep);
}
}  // namespace absl
#endif
