#include "model/encoders/unicode_text.h"

#include <algorithm>

#include "model/encoders/text_tables.h"

namespace recsys {
namespace {

using text_tables::CodepointRange;

bool InRanges(uint32_t cp, const CodepointRange* ranges, size_t n) {
  const CodepointRange* end = ranges + n;
  const CodepointRange* it = std::upper_bound(
      ranges, end, cp,
      [](uint32_t v, const CodepointRange& r) { return v < r.first; });
  if (it == ranges) return false;
  --it;
  return cp >= it->first && cp <= it->last;
}

}  // namespace

std::vector<uint32_t> DecodeUtf8(absl::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    int len = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      out.push_back(kReplacementChar);
      ++i;
      continue;
    }
    bool ok = i + len <= n;
    for (int k = 1; ok && k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) {
        ok = false;
      } else {
        cp = (cp << 6) | (s[i + k] & 0x3F);
      }
    }
    if (!ok || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      out.push_back(kReplacementChar);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacementChar;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string EncodeUtf8(const std::vector<uint32_t>& codepoints) {
  std::string out;
  out.reserve(codepoints.size());
  for (uint32_t cp : codepoints) AppendUtf8(cp, &out);
  return out;
}

bool IsBertWhitespace(uint32_t cp) {
  if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return true;
  return InRanges(cp, text_tables::kSpaceSeparator,
                  text_tables::kSpaceSeparatorSize);
}

bool IsBertControl(uint32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  return InRanges(cp, text_tables::kControl, text_tables::kControlSize);
}

bool IsBertPunctuation(uint32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) ||
      (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
    return true;
  }
  return InRanges(cp, text_tables::kPunctuation,
                  text_tables::kPunctuationSize);
}

bool IsCjkCharacter(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) ||
         (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
         (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool IsNonspacingMark(uint32_t cp) {
  return InRanges(cp, text_tables::kNonspacingMark,
                  text_tables::kNonspacingMarkSize);
}

void AppendLowerStripped(uint32_t cp, std::vector<uint32_t>* out) {
  if (cp < 0x80) {
    out->push_back(cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp);
    return;
  }
  if (IsNonspacingMark(cp)) return;
  const text_tables::FoldEntry* end = text_tables::kFold + text_tables::kFoldSize;
  const text_tables::FoldEntry* it = std::lower_bound(
      text_tables::kFold, end, cp,
      [](const text_tables::FoldEntry& e, uint32_t v) {
        return e.codepoint < v;
      });
  if (it != end && it->codepoint == cp) {
    for (uint32_t c : DecodeUtf8(it->utf8)) out->push_back(c);
    return;
  }
  out->push_back(cp);
}

}  // namespace recsys
