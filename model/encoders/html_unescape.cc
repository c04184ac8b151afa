#include "model/encoders/html_unescape.h"

#include <algorithm>
#include <cstring>

#include "model/encoders/text_tables.h"
#include "model/encoders/unicode_text.h"

namespace recsys {
namespace {

constexpr size_t kMaxEntityLength = 32;

// Parses the reference starting at text[0] == '&'. On success sets
// `codepoint` and `length` (bytes consumed, including '&' and ';').
bool ParseReference(absl::string_view text, uint32_t* codepoint,
                    size_t* length) {
  const size_t semi = text.find(';', 1);
  if (semi == absl::string_view::npos || semi > kMaxEntityLength) return false;
  const absl::string_view body = text.substr(1, semi - 1);
  if (body.empty()) return false;
  *length = semi + 1;
  if (body[0] == '#') {
    absl::string_view digits = body.substr(1);
    int base = 10;
    if (!digits.empty() && (digits[0] == 'x' || digits[0] == 'X')) {
      base = 16;
      digits.remove_prefix(1);
    }
    if (digits.empty()) return false;
    uint64_t value = 0;
    for (char c : digits) {
      int d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (base == 16 && c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
      } else if (base == 16 && c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
      } else {
        return false;
      }
      value = std::min<uint64_t>(value * base + d, 0x110000);
    }
    if (value == 0 || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) {
      value = kReplacementChar;
    }
    *codepoint = static_cast<uint32_t>(value);
    return true;
  }
  const std::string name(body);
  const text_tables::HtmlEntity* begin = text_tables::kHtmlEntities;
  const text_tables::HtmlEntity* end = begin + text_tables::kHtmlEntitiesSize;
  const text_tables::HtmlEntity* it = std::lower_bound(
      begin, end, name, [](const text_tables::HtmlEntity& e, const std::string& n) {
        return std::strcmp(e.name, n.c_str()) < 0;
      });
  if (it == end || name != it->name) return false;
  *codepoint = it->codepoint;
  return true;
}

}  // namespace

std::string HtmlUnescape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t amp = text.find('&', i);
    if (amp == absl::string_view::npos) {
      out.append(text.data() + i, text.size() - i);
      break;
    }
    out.append(text.data() + i, amp - i);
    uint32_t cp = 0;
    size_t len = 0;
    if (ParseReference(text.substr(amp), &cp, &len)) {
      AppendUtf8(cp, &out);
      i = amp + len;
    } else {
      out.push_back('&');
      i = amp + 1;
    }
  }
  return out;
}

}  // namespace recsys
