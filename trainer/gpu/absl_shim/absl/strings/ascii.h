// Shim (see absl/README).
#ifndef RECSYS_ABSL_SHIM_ASCII_H_
#define RECSYS_ABSL_SHIM_ASCII_H_
#include "absl/strings/string_view.h"
#include <string_view>
namespace absl {
inline bool ascii_isdigit(unsigned char c) { return c >= '0' && c <= '9'; }
inline bool ascii_isspace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
inline std::string_view StripAsciiWhitespace(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && ascii_isspace(s[b])) ++b;
  while (e > b && ascii_isspace(s[e - 1])) --e;
  return s.substr(b, e - b);
}
}  // namespace absl
#endif
