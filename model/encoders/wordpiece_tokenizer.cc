#include "model/encoders/wordpiece_tokenizer.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "model/encoders/html_unescape.h"
#include "model/encoders/unicode_text.h"

namespace recsys {

absl::StatusOr<std::unique_ptr<WordPieceTokenizer>> WordPieceTokenizer::Create(
    const Options& options) {
  ASSIGN_OR_RETURN(std::string contents, ReadFileToString(options.vocab_path));
  std::vector<std::string> tokens;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    tokens.emplace_back(line);
  }
  // A trailing newline leaves one empty last line that is not a token.
  if (!tokens.empty() && tokens.back().empty()) tokens.pop_back();
  return FromTokens(std::move(tokens), options);
}

absl::StatusOr<std::unique_ptr<WordPieceTokenizer>>
WordPieceTokenizer::FromTokens(std::vector<std::string> tokens,
                               const Options& options) {
  if (options.max_length < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_length must be >= 2 (room for [CLS] and [SEP]), got ",
        options.max_length));
  }
  auto tok = std::unique_ptr<WordPieceTokenizer>(new WordPieceTokenizer());
  tok->options_ = options;
  tok->ids_.reserve(tokens.size());
  uint32_t crc = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!tok->ids_.emplace(tokens[i], static_cast<int64_t>(i)).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "vocabulary has duplicate token '", tokens[i], "' at line ", i + 1));
    }
    crc = Crc32c(tokens[i], crc);
    crc = Crc32c("\n", crc);
  }
  tok->tokens_ = std::move(tokens);
  auto find = [&](const char* name, int64_t* id) -> absl::Status {
    auto it = tok->ids_.find(name);
    if (it == tok->ids_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("vocabulary lacks the special token ", name));
    }
    *id = it->second;
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(find("[CLS]", &tok->cls_id_));
  RETURN_IF_ERROR(find("[SEP]", &tok->sep_id_));
  RETURN_IF_ERROR(find("[PAD]", &tok->pad_id_));
  RETURN_IF_ERROR(find("[UNK]", &tok->unk_id_));
  crc = Crc32c(absl::StrCat(options.lower_case, ",", options.unescape_html, ",",
                            options.max_length, ",",
                            options.max_input_chars_per_word),
               crc);
  tok->fingerprint_ = absl::StrFormat("%08x", crc);
  return tok;
}

std::vector<std::string> WordPieceTokenizer::BasicTokenize(
    absl::string_view raw) const {
  const std::string unescaped =
      options_.unescape_html ? HtmlUnescape(raw) : std::string(raw);
  std::vector<std::string> words;
  std::vector<uint32_t> word;  // codepoints of the word being built
  auto flush = [&]() {
    if (!word.empty()) {
      words.push_back(EncodeUtf8(word));
      word.clear();
    }
  };
  auto emit_single = [&](uint32_t cp) {
    flush();
    std::string s;
    AppendUtf8(cp, &s);
    words.push_back(std::move(s));
  };
  std::vector<uint32_t> folded;
  for (uint32_t cp : DecodeUtf8(unescaped)) {
    // _clean_text: drop NUL, U+FFFD and control characters.
    if (cp == 0 || cp == kReplacementChar || IsBertControl(cp)) continue;
    if (IsBertWhitespace(cp)) {
      flush();
      continue;
    }
    // _tokenize_chinese_chars: CJK characters are words of their own.
    if (IsCjkCharacter(cp)) {
      emit_single(cp);
      continue;
    }
    folded.clear();
    if (options_.lower_case) {
      AppendLowerStripped(cp, &folded);
    } else {
      folded.push_back(cp);
    }
    for (uint32_t c : folded) {
      // _run_split_on_punc: each punctuation character is a word.
      if (IsBertPunctuation(c)) {
        emit_single(c);
      } else {
        word.push_back(c);
      }
    }
  }
  flush();
  return words;
}

void WordPieceTokenizer::WordPieceIds(const std::string& word,
                                      std::vector<int64_t>* ids) const {
  // Byte offsets of codepoint boundaries, so substrings stay valid UTF-8.
  std::vector<size_t> bounds;
  bounds.reserve(word.size() + 1);
  for (size_t i = 0; i < word.size(); ++i) {
    if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80) bounds.push_back(i);
  }
  bounds.push_back(word.size());
  const size_t num_chars = bounds.size() - 1;
  if (num_chars > static_cast<size_t>(options_.max_input_chars_per_word)) {
    ids->push_back(unk_id_);
    return;
  }
  const size_t first_piece = ids->size();
  std::string candidate;
  size_t start = 0;
  while (start < num_chars) {
    size_t end = num_chars;
    int64_t found = -1;
    while (start < end) {
      candidate.clear();
      if (start > 0) candidate = "##";
      candidate.append(word, bounds[start], bounds[end] - bounds[start]);
      auto it = ids_.find(candidate);
      if (it != ids_.end()) {
        found = it->second;
        break;
      }
      --end;
    }
    if (found < 0) {
      ids->resize(first_piece);
      ids->push_back(unk_id_);
      return;
    }
    ids->push_back(found);
    start = end;
  }
}

std::vector<std::string> WordPieceTokenizer::Tokenize(
    absl::string_view text) const {
  std::vector<int64_t> ids;
  for (const std::string& w : BasicTokenize(text)) WordPieceIds(w, &ids);
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int64_t id : ids) out.push_back(tokens_[id]);
  return out;
}

std::vector<int64_t> WordPieceTokenizer::Encode(absl::string_view text) const {
  std::vector<int64_t> ids;
  ids.push_back(cls_id_);
  const size_t limit = static_cast<size_t>(options_.max_length) - 1;
  for (const std::string& w : BasicTokenize(text)) {
    WordPieceIds(w, &ids);
    if (ids.size() >= limit) break;
  }
  if (ids.size() > limit) ids.resize(limit);
  ids.push_back(sep_id_);
  return ids;
}

}  // namespace recsys
