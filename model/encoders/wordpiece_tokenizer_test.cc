#include "model/encoders/wordpiece_tokenizer.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::ElementsAre;

// The real bert-base-uncased vocabulary from RECSYS_DATA_DIR, or skip.
std::string DataDir() {
  const char* dir = std::getenv("RECSYS_DATA_DIR");
  return dir ? dir : "";
}

class RealVocabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string vocab =
        JoinPath(DataDir(), "bert-base-uncased/vocab.txt");
    if (DataDir().empty() || !PathExists(vocab)) {
      GTEST_SKIP() << "RECSYS_DATA_DIR unset or lacks "
                      "bert-base-uncased/vocab.txt; pass "
                      "--test_env=RECSYS_DATA_DIR=/path/to/shared/data";
    }
    WordPieceTokenizer::Options options;
    options.vocab_path = vocab;
    options.max_length = 30;
    ASSERT_OK_AND_ASSIGN(tok_, WordPieceTokenizer::Create(options));
  }
  std::unique_ptr<WordPieceTokenizer> tok_;
};

TEST_F(RealVocabTest, SpecialIdsOfBertBaseUncased) {
  EXPECT_EQ(tok_->vocab_size(), 30522);
  EXPECT_EQ(tok_->pad_id(), 0);
  EXPECT_EQ(tok_->unk_id(), 100);
  EXPECT_EQ(tok_->cls_id(), 101);
  EXPECT_EQ(tok_->sep_id(), 102);
}

TEST_F(RealVocabTest, HandCheckedTitles) {
  // Ids checked by hand against vocab.txt (line number - 1).
  EXPECT_THAT(tok_->Encode("Hello, World!"),
              ElementsAre(101, 7592, 1010, 2088, 999, 102));
  EXPECT_THAT(tok_->Tokenize("Data Hold &amp; Error Code"),
              ElementsAre("data", "hold", "&", "error", "code"));
  EXPECT_THAT(tok_->Tokenize("&quot;Caf\xC3\xA9 R\xC3\xA9sum\xC3\xA9&quot;"),
              ElementsAre("\"", "cafe", "resume", "\""));
  EXPECT_THAT(tok_->Tokenize("Nema17 Stepper"),
              ElementsAre("ne", "##ma", "##17", "steppe", "##r"));
  EXPECT_THAT(tok_->Tokenize("unaffable"), ElementsAre("una", "##ffa", "##ble"));
  EXPECT_THAT(tok_->Tokenize("2.2lbs"), ElementsAre("2", ".", "2", "##lb", "##s"));
  EXPECT_THAT(tok_->Tokenize("\xE4\xB8\xAD\xE6\x96\x87"),  // 中文
              ElementsAre("\xE4\xB8\xAD", "\xE6\x96\x87"));
  EXPECT_THAT(tok_->Tokenize("10&deg;C"), ElementsAre("10", "##\xC2\xB0", "##c"));  // ° is So, not P
}

TEST_F(RealVocabTest, UnknownForOverlongAndUnmatchableWords) {
  EXPECT_THAT(tok_->Tokenize(std::string(101, 'a')), ElementsAre("[UNK]"));
  EXPECT_THAT(tok_->Tokenize(std::string(100, 'a') + " ok").size(), 
              ::testing::Gt(2u));  // 100 chars is still WordPiece'd
  // U+2603 SNOWMAN is not in the vocabulary, nor any piece of it.
  EXPECT_THAT(tok_->Tokenize("a \xE2\x98\x83 b"), ElementsAre("a", "[UNK]", "b"));
}

TEST_F(RealVocabTest, TruncatesToMaxLengthWithSep) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += "word ";
  const std::vector<int64_t> ids = tok_->Encode(text);
  ASSERT_EQ(ids.size(), 30u);
  EXPECT_EQ(ids.front(), 101);
  EXPECT_EQ(ids.back(), 102);
  EXPECT_EQ(ids[28], ids[1]);
  EXPECT_THAT(tok_->Encode(" \t&nbsp;"), ElementsAre(101, 102));
}

TEST_F(RealVocabTest, TokenizesEveryRealTitle) {
  const std::string items = JoinPath(DataDir(), "amazon-scientific/items.tsv");
  if (!PathExists(items)) GTEST_SKIP() << "no " << items;
  ASSERT_OK_AND_ASSIGN(std::string contents, ReadFileToString(items));
  int64_t titles = 0, pieces = 0, unknown = 0, entity_leftovers = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> cols = absl::StrSplit(line, '\t');
    ASSERT_EQ(cols.size(), 2u) << line;
    const std::vector<std::string> toks = tok_->Tokenize(cols[1]);
    ++titles;
    pieces += toks.size();
    for (size_t i = 0; i + 1 < toks.size(); ++i) {
      if (toks[i] == "&" && (toks[i + 1] == "quot" || toks[i + 1] == "amp")) {
        ++entity_leftovers;
      }
    }
    for (const auto& t : toks) unknown += t == "[UNK]";
    const std::vector<int64_t> ids = tok_->Encode(cols[1]);
    ASSERT_LE(ids.size(), 30u);
    ASSERT_GE(ids.size(), 2u);
  }
  EXPECT_EQ(titles, 20825);
  EXPECT_EQ(entity_leftovers, 0);
  EXPECT_GT(pieces, titles * 10);
  EXPECT_LT(unknown, pieces / 1000);
}

// Every real title against an independent Python tokenizer (unicodedata +
// html.unescape), id for id.
TEST_F(RealVocabTest, MatchesIndependentPythonTokenizerOnAllTitles) {
  const std::string items = JoinPath(DataDir(), "amazon-scientific/items.tsv");
  if (!PathExists(items)) GTEST_SKIP() << "no " << items;
  if (std::system("/usr/bin/python3 -c 'import unicodedata, html' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "no /usr/bin/python3";
  }
  const std::string out = TestTempPath("python_ids.txt");
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string script =
      std::string(srcdir ? srcdir : ".") +
      "/recsys/model/encoders/testdata/wordpiece_reference.py";
  const std::string cmd = "/usr/bin/python3 '" + script + "' '" +
                          JoinPath(DataDir(), "bert-base-uncased/vocab.txt") +
                          "' '" + items + "' 30 '" + out + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  ASSERT_OK_AND_ASSIGN(std::string contents, ReadFileToString(items));
  ASSERT_OK_AND_ASSIGN(std::string expected, ReadFileToString(out));
  std::vector<std::string> want = absl::StrSplit(expected, '\n', absl::SkipEmpty());
  size_t i = 0, mismatches = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n', absl::SkipEmpty())) {
    ASSERT_LT(i, want.size());
    const std::string title(line.substr(line.find('\t') + 1));
    std::string got;
    for (int64_t id : tok_->Encode(title)) {
      if (!got.empty()) got += " ";
      got += std::to_string(id);
    }
    if (got != want[i] && ++mismatches <= 5) {
      ADD_FAILURE() << "title " << i << " '" << title << "'\n  C++:    " << got
                    << "\n  Python: " << want[i];
    }
    ++i;
  }
  EXPECT_EQ(i, want.size());
  EXPECT_EQ(mismatches, 0u);
}

TEST(WordPieceTokenizerTest, RejectsVocabWithoutSpecialTokens) {
  WordPieceTokenizer::Options options;
  EXPECT_THAT(WordPieceTokenizer::FromTokens({"[CLS]", "[SEP]", "a"}, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(WordPieceTokenizer::FromTokens(
                  {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "a"}, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  options.vocab_path = "/nonexistent/vocab.txt";
  EXPECT_THAT(WordPieceTokenizer::Create(options),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(WordPieceTokenizerTest, GreedyLongestMatchWithToyVocab) {
  WordPieceTokenizer::Options options;
  ASSERT_OK_AND_ASSIGN(
      auto tok, WordPieceTokenizer::FromTokens(
                    {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff",
                     "##able", "runn", "##ing", "##a", "una"},
                    options));
  EXPECT_THAT(tok->Tokenize("unaffable running"),
              ElementsAre("[UNK]", "runn", "##ing"));  // "una" then no match
  EXPECT_THAT(tok->Tokenize("UN"), ElementsAre("un"));
}

}  // namespace
}  // namespace recsys
