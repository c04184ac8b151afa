// BERT WordPiece tokenizer (the algorithm of Hugging Face's BertTokenizer,
// uncased): HTML unescaping of the raw title, then basic tokenization
// (drop control characters, normalise whitespace, split CJK characters,
// lower-case and strip accents, split on punctuation), then greedy
// longest-match-first WordPiece with "##" continuations, [UNK] for words
// longer than `max_input_chars_per_word` codepoints or with no match, and
// [CLS] ... [SEP] around a sequence truncated to `max_length` ids.
//
// Thread-safety: immutable after Create(); Encode() may run on many threads.
#ifndef RECSYS_MODEL_ENCODERS_WORDPIECE_TOKENIZER_H_
#define RECSYS_MODEL_ENCODERS_WORDPIECE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys {

class WordPieceTokenizer {
 public:
  struct Options {
    std::string vocab_path;              // vocab.txt: one token per line
    bool lower_case = true;              // lower-case and strip accents
    bool unescape_html = true;           // decode &amp; &#39; ... first
    int max_length = 512;                // ids per sequence, [CLS]/[SEP] included
    int max_input_chars_per_word = 100;  // longer words become [UNK]
  };

  // NOT_FOUND for a missing vocab file; INVALID_ARGUMENT when it lacks
  // [CLS], [SEP], [PAD] or [UNK], has duplicates, or max_length < 2.
  static absl::StatusOr<std::unique_ptr<WordPieceTokenizer>> Create(
      const Options& options);
  // Same, from the vocabulary itself (tests, embedded vocabularies).
  static absl::StatusOr<std::unique_ptr<WordPieceTokenizer>> FromTokens(
      std::vector<std::string> tokens, const Options& options);

  // Words after basic tokenization (no WordPiece), e.g. "Héllo, World!" ->
  // {"hello", ",", "world", "!"}.
  std::vector<std::string> BasicTokenize(absl::string_view text) const;
  // WordPiece strings without [CLS]/[SEP] and without truncation.
  std::vector<std::string> Tokenize(absl::string_view text) const;
  // [CLS] ids [SEP], truncated to max_length. A text with no tokens yields
  // {[CLS], [SEP]}.
  std::vector<int64_t> Encode(absl::string_view text) const;

  int64_t vocab_size() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t cls_id() const { return cls_id_; }
  int64_t sep_id() const { return sep_id_; }
  int64_t pad_id() const { return pad_id_; }
  int64_t unk_id() const { return unk_id_; }
  int max_length() const { return options_.max_length; }
  // Token of `id`; REQUIRES: 0 <= id < vocab_size().
  const std::string& token(int64_t id) const { return tokens_[id]; }
  // CRC-32C of the vocabulary and options, hex: part of cache fingerprints.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  WordPieceTokenizer() = default;
  // Appends the ids of one basic-tokenized word.
  void WordPieceIds(const std::string& word, std::vector<int64_t>* ids) const;

  Options options_;
  std::vector<std::string> tokens_;
  absl::flat_hash_map<std::string, int64_t> ids_;
  int64_t cls_id_ = -1, sep_id_ = -1, pad_id_ = -1, unk_id_ = -1;
  std::string fingerprint_;
};

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_WORDPIECE_TOKENIZER_H_
