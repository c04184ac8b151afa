// Shim (see absl/README).
#ifndef RECSYS_ABSL_SHIM_MATCH_H_
#define RECSYS_ABSL_SHIM_MATCH_H_
#include "absl/strings/string_view.h"
#include <cctype>
#include <string_view>
namespace absl {
inline bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
inline bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}
inline bool StrContains(std::string_view s, std::string_view p) { return s.find(p) != s.npos; }
inline bool StrContains(std::string_view s, char c) { return s.find(c) != s.npos; }
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}
}  // namespace absl
#endif
