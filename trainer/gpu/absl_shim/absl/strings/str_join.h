// Shim (see absl/README): joins anything StrCat can print.
#ifndef RECSYS_ABSL_SHIM_STR_JOIN_H_
#define RECSYS_ABSL_SHIM_STR_JOIN_H_
#include "absl/strings/string_view.h"
#include <string>
#include <string_view>
#include "absl/strings/str_cat.h"
namespace absl {
template <typename It>
std::string StrJoin(It begin, It end, std::string_view sep) {
  std::string out;
  for (It it = begin; it != end; ++it) {
    if (it != begin) out.append(sep);
    out.append(AlphaNum(*it).piece());
  }
  return out;
}
template <typename C>
std::string StrJoin(const C& c, std::string_view sep) {
  return StrJoin(std::begin(c), std::end(c), sep);
}
}  // namespace absl
#endif
