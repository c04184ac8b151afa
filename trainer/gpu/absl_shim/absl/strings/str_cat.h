// Shim (see absl/README): StrCat / StrAppend over std::ostringstream-free
// conversions (integers exact, floating point as %.6g like Abseil).
#ifndef RECSYS_ABSL_SHIM_STR_CAT_H_
#define RECSYS_ABSL_SHIM_STR_CAT_H_
#include "absl/strings/string_view.h"
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
namespace absl {
class AlphaNum {
 public:
  AlphaNum(std::string_view s) : piece_(s) {}
  AlphaNum(const std::string& s) : piece_(s) {}
  AlphaNum(const char* s) : piece_(s == nullptr ? "" : s) {}
  AlphaNum(char c) = delete;  // as in Abseil: ambiguous (char or number?)
  template <typename T, typename std::enable_if<std::is_integral<T>::value &&
                                                    !std::is_same<T, char>::value &&
                                                    !std::is_same<T, bool>::value,
                                                int>::type = 0>
  AlphaNum(T v) : own_(std::to_string(v)), piece_(own_) {}
  AlphaNum(bool v) : piece_(v ? "1" : "0") {}
  AlphaNum(float v) : AlphaNum(static_cast<double>(v)) {}
  AlphaNum(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.6g", v);
    own_ = buf;
    piece_ = own_;
  }
  AlphaNum(const AlphaNum& o) : own_(o.own_), piece_(o.own_.empty() ? o.piece_ : own_) {}
  std::string_view piece() const { return piece_; }
 private:
  std::string own_;
  std::string_view piece_;
};
inline std::string StrCat() { return std::string(); }
template <typename... T>
std::string StrCat(const AlphaNum& a, const T&... rest) {
  std::string out(a.piece());
  (out.append(AlphaNum(rest).piece()), ...);
  return out;
}
template <typename... T>
void StrAppend(std::string* out, const T&... rest) {
  (out->append(AlphaNum(rest).piece()), ...);
}
}  // namespace absl
#endif
