// UTF-8 and character classes for BERT-style text normalisation, without ICU.
// Classes follow Python's unicodedata (Unicode 14) for the Basic Multilingual
// Plane, which is what Hugging Face's BasicTokenizer consults; codepoints
// above U+FFFF are treated as ordinary letters.
//
// Thread-safe: pure functions over constant tables.
#ifndef RECSYS_MODEL_ENCODERS_UNICODE_TEXT_H_
#define RECSYS_MODEL_ENCODERS_UNICODE_TEXT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace recsys {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Decodes UTF-8; each invalid or truncated byte sequence becomes one U+FFFD.
std::vector<uint32_t> DecodeUtf8(absl::string_view text);
void AppendUtf8(uint32_t codepoint, std::string* out);
std::string EncodeUtf8(const std::vector<uint32_t>& codepoints);

// BERT's definitions (transformers' tokenization_bert.py):
// whitespace: space, \t, \n, \r or category Zs.
bool IsBertWhitespace(uint32_t cp);
// control: category Cc/Cf, except \t, \n, \r.
bool IsBertControl(uint32_t cp);
// punctuation: ASCII non-alphanumeric printable, or category P*.
bool IsBertPunctuation(uint32_t cp);
// CJK Unified Ideographs and their extensions / compatibility blocks.
bool IsCjkCharacter(uint32_t cp);
// Category Mn (what accent stripping drops after NFD).
bool IsNonspacingMark(uint32_t cp);

// Lower-cases `cp` and strips its accents (NFD, then drop Mn), appending the
// resulting codepoints (zero, one or more) to `out`.
void AppendLowerStripped(uint32_t cp, std::vector<uint32_t>* out);

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_UNICODE_TEXT_H_
