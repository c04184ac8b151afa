// The weight-free default text embedder: a sentence becomes a fixed-width,
// L2-normalised vector of signed-hashed, TF-IDF-weighted features, so inner
// product is cosine similarity.
//
//   normalise  UTF-8 decoded (invalid bytes -> U+FFFD), lower-cased with
//              accents stripped (model/encoders' unicode_text, BERT
//              uncased rules), control characters dropped; whitespace and
//              punctuation split words; each CJK character is a word.
//   features   word unigrams, and character n-grams (min_ngram..max_ngram
//              codepoints) of each word padded as "<word>" (fastText).
//   weights    (1 + ln tf) * idf, idf = ln((1 + N) / (1 + df)) + 1 over the
//              N fitted documents; df is counted per feature in a table of
//              idf_buckets hashed slots. Before fitting (N = 0) every idf is
//              1: plain sublinear TF, already usable.
//   projection each feature adds its weight, with a hashed sign, to one of
//              `dimension` hashed columns (FNV-1a 64 + a splitmix64
//              finaliser over the feature's UTF-8 bytes: the same numbers on
//              every platform and run, unlike std::hash).
//
// Good for: sentences that share words or word pieces (translation example
// selection by source-sentence overlap, near-duplicate detection, spelling
// variants). Not for: paraphrases with no shared words, or cross-lingual
// similarity; use a sentence-embedding encoder for those.
//
// Fitted state (document frequencies, options, document count) serialises to
// a safetensors blob with a CRC-32C over it, checked on Deserialize; the
// fingerprint names the settings and that checksum.
//
// Thread-safety: immutable after construction; Embed may run on any number
// of threads.
#ifndef RECSYS_SERVER_SIMILARITY_HASHED_TEXT_EMBEDDER_H_
#define RECSYS_SERVER_SIMILARITY_HASHED_TEXT_EMBEDDER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys {
namespace similarity {

struct HashedTextOptions {
  // Output width, 16..4096.
  int dimension = 512;
  // Character n-gram lengths in codepoints, 1 <= min <= max <= 8; max 0
  // turns character n-grams off.
  int min_ngram = 3;
  int max_ngram = 5;
  // Weight of each word-unigram feature relative to an n-gram feature; 0
  // turns word unigrams off.
  double word_weight = 2.0;
  // Document-frequency table size, 1024..2^24.
  int idf_buckets = 1 << 18;
  // Longer texts are refused (INVALID_ARGUMENT), as are longer documents
  // when fitting.
  int64_t max_text_bytes = 100'000;
  // Changes every hash: embedders with different seeds are unrelated.
  uint64_t seed = 0;
};

class HashedTextEmbedder {
 public:
  // An unfitted embedder (every idf 1). INVALID_ARGUMENT for bad options.
  static absl::StatusOr<std::unique_ptr<HashedTextEmbedder>> Create(
      const HashedTextOptions& options);
  // Fits document frequencies on `documents` (the indexed set). Empty
  // documents count as documents with no features. INVALID_ARGUMENT for
  // bad options or a document over max_text_bytes (naming its index).
  static absl::StatusOr<std::unique_ptr<HashedTextEmbedder>> Fit(
      const HashedTextOptions& options,
      const std::vector<std::string>& documents);
  // The inverse of Serialize(). INVALID_ARGUMENT for a damaged blob.
  static absl::StatusOr<std::unique_ptr<HashedTextEmbedder>> Deserialize(
      absl::string_view bytes);

  // dimension() floats, L2 norm 1. INVALID_ARGUMENT for an empty text, one
  // over max_text_bytes, or one with no word characters.
  absl::StatusOr<std::vector<float>> Embed(absl::string_view text) const;

  std::string Serialize() const;

  const HashedTextOptions& options() const { return options_; }
  int dimension() const { return options_.dimension; }
  int64_t fitted_documents() const { return num_documents_; }
  // "hashed_text/v1 dim=512 ngrams=3-5 word_weight=2 idf_buckets=262144
  //  seed=0 docs=N state=<crc32c>".
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  HashedTextEmbedder() = default;
  void Finish();

  HashedTextOptions options_;
  int64_t num_documents_ = 0;
  std::vector<uint32_t> document_frequency_;  // [idf_buckets]
  std::string fingerprint_;
  uint32_t state_crc_ = 0;
};

absl::Status ValidateHashedTextOptions(const HashedTextOptions& options);

// The normalised words of `text` (exposed for tests and for the
// de-duplication of near-identical examples).
std::vector<std::string> NormalizedWords(absl::string_view text);

// FNV-1a 64 of `bytes` with `seed` folded in, then splitmix64's finaliser.
uint64_t StableHash64(absl::string_view bytes, uint64_t seed);

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_HASHED_TEXT_EMBEDDER_H_
