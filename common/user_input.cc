#include "common/user_input.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace recsys {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0.
size_t SequenceLength(absl::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size() || (n == 2 && c < 0xC2) || c > 0xF4) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return 0;
  }
  return n;
}

}  // namespace

std::string QuoteUserInput(absl::string_view s) {
  std::string out = "'";
  size_t chars = 0, i = 0;
  for (; i < s.size() && chars < kQuotedInputMaxChars; ++chars) {
    const size_t n = SequenceLength(s, i);
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (n == 0) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
      i += 1;
    } else if (n == 1 && (c < 0x20 || c == 0x7f || c == '\'' || c == '\\')) {
      absl::StrAppendFormat(&out, c == '\'' || c == '\\' ? "\\%c" : "\\x%02x", c);
      i += 1;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  out += "'";
  if (i < s.size()) absl::StrAppend(&out, "... (", s.size(), " bytes)");
  return out;
}

}  // namespace recsys
