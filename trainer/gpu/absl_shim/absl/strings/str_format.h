// Shim (see absl/README): StrFormat / StrAppendFormat with Abseil's type
// rules for the conversions we use: %d %i %u %x %X %o take any integer,
// %f %e %g %E %G %a take any number, %s takes strings (and numbers), %c a
// char, %% a percent; flags, width and precision as printf.
#ifndef RECSYS_ABSL_SHIM_STR_FORMAT_H_
#define RECSYS_ABSL_SHIM_STR_FORMAT_H_
#include "absl/strings/string_view.h"
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>
namespace absl {
namespace shim_internal {
struct FormatArg {
  enum Kind { kSigned, kUnsigned, kDouble, kString, kPointer } kind;
  long long i = 0;
  unsigned long long u = 0;
  double d = 0;
  std::string_view s;
  const void* p = nullptr;
  template <typename T, typename std::enable_if<std::is_integral<T>::value && std::is_signed<T>::value, int>::type = 0>
  FormatArg(T v) : kind(kSigned), i(v) {}
  template <typename T, typename std::enable_if<std::is_integral<T>::value && !std::is_signed<T>::value, int>::type = 0>
  FormatArg(T v) : kind(kUnsigned), u(v) {}
  FormatArg(float v) : kind(kDouble), d(v) {}
  FormatArg(double v) : kind(kDouble), d(v) {}
  FormatArg(long double v) : kind(kDouble), d(static_cast<double>(v)) {}
  FormatArg(const std::string& v) : kind(kString), s(v) {}
  FormatArg(std::string_view v) : kind(kString), s(v) {}
  FormatArg(const char* v) : kind(kString), s(v == nullptr ? "" : v) {}
  FormatArg(const void* v) : kind(kPointer), p(v) {}
};
void AppendFormatted(std::string* out, std::string_view format,
                     const std::vector<FormatArg>& args);
}  // namespace shim_internal

template <typename... T>
std::string StrFormat(std::string_view format, const T&... args) {
  std::string out;
  shim_internal::AppendFormatted(&out, format, {shim_internal::FormatArg(args)...});
  return out;
}
template <typename... T>
std::string& StrAppendFormat(std::string* out, std::string_view format, const T&... args) {
  shim_internal::AppendFormatted(out, format, {shim_internal::FormatArg(args)...});
  return *out;
}
}  // namespace absl
#endif
