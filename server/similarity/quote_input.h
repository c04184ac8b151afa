// Quoting user input in error messages: at most kMaxQuotedBytes bytes, non-
// printable bytes as '?', in double quotes, "..." when cut. A local stand-in
// with the name and shape of common/user_input.h's QuoteUserInput, so that
// moving to it is an include change.
//
// Thread-safety: pure function.
#ifndef RECSYS_SERVER_SIMILARITY_QUOTE_INPUT_H_
#define RECSYS_SERVER_SIMILARITY_QUOTE_INPUT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace recsys {
namespace similarity {

inline constexpr size_t kMaxQuotedBytes = 64;

inline std::string QuoteUserInput(absl::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, kMaxQuotedBytes)) {
    const unsigned char u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? '?' : c);
  }
  out += s.size() > kMaxQuotedBytes ? "...\"" : "\"";
  return out;
}

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_QUOTE_INPUT_H_
