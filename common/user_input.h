// Quoting user-supplied text inside error messages: quoted, cut to 64
// characters at a UTF-8 boundary (invalid bytes escaped), with the full
// length after a cut, so a message stays small enough to send and readable:
//   QuoteUserInput("items")          -> 'items'
//   QuoteUserInput(<10 KB of "a">)   -> 'aaaa...aaaa...' (10240 bytes)
// Thread-safety: pure functions.
#ifndef RECSYS_COMMON_USER_INPUT_H_
#define RECSYS_COMMON_USER_INPUT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace recsys {

inline constexpr size_t kQuotedInputMaxChars = 64;

std::string QuoteUserInput(absl::string_view s);

}  // namespace recsys

#endif  // RECSYS_COMMON_USER_INPUT_H_
