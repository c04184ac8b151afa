// Verse-aligned parallel corpora from installed SWORD Bible modules (Debian:
// sword-text-kjv = engKJV2006eb, sword-text-sparv = spaRV1909eb), read by
// running `diatheke` (Debian package diatheke) with plain-text output, one
// process per module, arguments passed directly (no shell). Verses are
// aligned by their reference ("Ruth 1:16"); both modules must use the same
// versification (these two both use KJV's). Debian also ships libsword-dev,
// which would read the modules in-process; diatheke keeps this library free
// of libsword and its ICU/CLucene dependencies, at the cost of one process
// per module (the whole KJV takes ~10 s on these machines).
//
// diatheke's plain output is "Book C:V: text" per verse, with section
// headings (e.g. psalm titles) on lines of their own before a verse; only
// the text after a verse's reference is taken, without the markup plain
// output still carries (Strong's numbers "<H1870>" in spaRV1909eb).
//
// Thread-safety: pure functions (each call runs its own processes).
#ifndef RECSYS_SERVER_SIMILARITY_PARALLEL_CORPUS_H_
#define RECSYS_SERVER_SIMILARITY_PARALLEL_CORPUS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys {
namespace similarity {

// One example for in-context example selection.
struct TranslationPair {
  std::string key;     // unique in a corpus, e.g. "Ruth 1:16"
  std::string source;
  std::string target;
  std::string pair;    // language pair, "en-es"
  std::optional<float> quality;  // none from Bibles
};

struct Verse {
  std::string reference;  // "Ruth 1:16"
  std::string text;       // markup and pilcrows dropped, spaces collapsed
};

struct DiathekeCorpusOptions {
  std::string diatheke = "/usr/bin/diatheke";
  std::string source_module = "engKJV2006eb";
  std::string target_module = "spaRV1909eb";
  std::string pair = "en-es";
  // A diatheke key: a verse, a range, or the whole Bible.
  std::string range = "Genesis 1:1-Revelation 22:21";
  // diatheke output beyond this is refused.
  int64_t max_output_bytes = 64ll << 20;
};

// Parses diatheke -f plain output. Lines that are not verses (headings, the
// trailing "(module)" line, blank lines) are skipped.
std::vector<Verse> ParseDiathekePlain(absl::string_view output);

// Verses present (with non-empty text) in both, in `source` order.
std::vector<TranslationPair> AlignVerses(const std::vector<Verse>& source,
                                         const std::vector<Verse>& target,
                                         const std::string& pair);

// The module names diatheke reports as installed.
absl::StatusOr<std::vector<std::string>> ListDiathekeModules(
    const std::string& diatheke = "/usr/bin/diatheke");

// Runs diatheke for both modules over `range` and aligns the verses.
// NOT_FOUND naming the Debian package when diatheke or a module is missing;
// INVALID_ARGUMENT when the range yields no verses; INTERNAL when diatheke
// fails.
absl::StatusOr<std::vector<TranslationPair>> ReadDiathekeParallelCorpus(
    const DiathekeCorpusOptions& options = {});

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_PARALLEL_CORPUS_H_
