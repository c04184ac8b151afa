// Character tables for the WordPiece tokenizer and the HTML unescaper,
// generated from Python's unicodedata / html.entities by
// tools/gen_text_tables.py (see text_tables.cc). Internal to this package:
// use unicode_text.h.
#ifndef RECSYS_MODEL_ENCODERS_TEXT_TABLES_H_
#define RECSYS_MODEL_ENCODERS_TEXT_TABLES_H_

#include <cstddef>
#include <cstdint>

namespace recsys {
namespace text_tables {

struct CodepointRange {
  uint32_t first;
  uint32_t last;  // inclusive
};
struct FoldEntry {
  uint32_t codepoint;
  const char* utf8;  // lower-cased, accents stripped; may be empty
};
struct HtmlEntity {
  const char* name;
  uint32_t codepoint;
};

// Sorted, non-overlapping; BMP only.
extern const CodepointRange kPunctuation[];  // Unicode category P*
extern const size_t kPunctuationSize;
extern const CodepointRange kControl[];  // Cc, Cf
extern const size_t kControlSize;
extern const CodepointRange kSpaceSeparator[];  // Zs
extern const size_t kSpaceSeparatorSize;
extern const CodepointRange kNonspacingMark[];  // Mn
extern const size_t kNonspacingMarkSize;
// Sorted by codepoint.
extern const FoldEntry kFold[];
extern const size_t kFoldSize;
// Sorted by name (strcmp order).
extern const HtmlEntity kHtmlEntities[];
extern const size_t kHtmlEntitiesSize;

}  // namespace text_tables
}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_TEXT_TABLES_H_
