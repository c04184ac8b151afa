// Shim (see absl/README): C-style escaping (\n \t \r \" \' \\, others
// non-printable as three-digit octal).
#ifndef RECSYS_ABSL_SHIM_ESCAPING_H_
#define RECSYS_ABSL_SHIM_ESCAPING_H_
#include "absl/strings/string_view.h"
#include <cstdio>
#include <string>
#include <string_view>
namespace absl {
inline std::string CEscape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\"': out += "\\\""; break;
      case '\'': out += "\\'"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\%03o", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}
}  // namespace absl
#endif
