// Shim (see absl/README): whole-string parses (surrounding ASCII whitespace
// allowed, as Abseil), false on anything else or out of range.
#ifndef RECSYS_ABSL_SHIM_NUMBERS_H_
#define RECSYS_ABSL_SHIM_NUMBERS_H_
#include "absl/strings/string_view.h"
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include "absl/strings/ascii.h"
namespace absl {
template <typename T>
bool SimpleAtoi(std::string_view text, T* out) {
  static_assert(std::is_integral<T>::value, "integers only");
  const std::string s(StripAsciiWhitespace(text));
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  if (std::is_signed<T>::value) {
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || v < static_cast<long long>(std::numeric_limits<T>::min()) ||
        v > static_cast<long long>(std::numeric_limits<T>::max())) return false;
    *out = static_cast<T>(v);
  } else {
    if (s[0] == '-') return false;
    const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || v > static_cast<unsigned long long>(std::numeric_limits<T>::max())) return false;
    *out = static_cast<T>(v);
  }
  return true;
}
inline bool SimpleAtod(std::string_view text, double* out) {
  const std::string s(StripAsciiWhitespace(text));
  if (s.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (*end != '\0') return false;
  *out = v;  // overflow gives +-inf, as Abseil
  return true;
}
inline bool SimpleAtof(std::string_view text, float* out) {
  double d;
  if (!SimpleAtod(text, &d)) return false;
  *out = static_cast<float>(d);
  return true;
}
}  // namespace absl
#endif
