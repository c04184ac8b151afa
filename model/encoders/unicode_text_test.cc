#include "model/encoders/unicode_text.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::ElementsAre;

std::string Fold(const std::string& s) {
  std::vector<uint32_t> out;
  for (uint32_t cp : DecodeUtf8(s)) AppendLowerStripped(cp, &out);
  return EncodeUtf8(out);
}

TEST(Utf8Test, RoundTripsAllWidths) {
  const std::string s = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";  // a é 中 😀
  EXPECT_THAT(DecodeUtf8(s), ElementsAre(0x61, 0xE9, 0x4E2D, 0x1F600));
  EXPECT_EQ(EncodeUtf8(DecodeUtf8(s)), s);
}

TEST(Utf8Test, InvalidBytesBecomeReplacementCharacters) {
  // Lone continuation byte, overlong "/", truncated 3-byte sequence.
  EXPECT_THAT(DecodeUtf8("\x80" "x" "\xC0\xAF" "\xE4\xB8"),
              ElementsAre(kReplacementChar, 'x', kReplacementChar,
                          kReplacementChar, kReplacementChar, kReplacementChar));
}

TEST(FoldTest, LowerCasesAndStripsLatinAccents) {
  EXPECT_EQ(Fold("CAF\xC3\x89"), "cafe");                 // CAFÉ
  EXPECT_EQ(Fold("\xC3\x91" "and\xC3\xBA"), "nandu");     // Ñandú
  EXPECT_EQ(Fold("\xC3\x98" "re"), "\xC3\xB8" "re");      // Øre -> øre (no NFD)
  EXPECT_EQ(Fold("\xC5\x81\xC3\xB3" "d\xC5\xBA"), "\xC5\x82" "odz");  // Łódź
  EXPECT_EQ(Fold("\xC7\x8D"), "a");                       // Ǎ (Latin Ext-B)
  EXPECT_EQ(Fold("\xE1\xBA\xA0"), "a");                   // Ạ (Ext Additional)
  // Decomposed input: e + combining acute.
  EXPECT_EQ(Fold("e\xCC\x81"), "e");
  EXPECT_EQ(Fold("\xCE\x86"), "\xCE\xB1");                // Ά -> α
}

TEST(ClassTest, MatchesBertDefinitions) {
  EXPECT_TRUE(IsBertPunctuation('$'));  // ASCII symbols count, unlike Unicode
  EXPECT_TRUE(IsBertPunctuation('^'));
  EXPECT_TRUE(IsBertPunctuation(0x2014));  // em dash
  EXPECT_TRUE(IsBertPunctuation(0x00BF));  // ¿
  EXPECT_FALSE(IsBertPunctuation(0x00AE));  // ® is a symbol (So)
  EXPECT_FALSE(IsBertPunctuation('a'));
  EXPECT_TRUE(IsBertWhitespace(0x00A0));  // nbsp is Zs
  EXPECT_TRUE(IsBertWhitespace('\n'));
  EXPECT_FALSE(IsBertControl('\t'));
  EXPECT_TRUE(IsBertControl(0x00AD));  // soft hyphen is Cf
  EXPECT_TRUE(IsBertControl(0x200B));  // zero-width space is Cf
  EXPECT_TRUE(IsCjkCharacter(0x4E2D));
  EXPECT_FALSE(IsCjkCharacter(0x3042));  // Hiragana is not split by BERT
}

}  // namespace
}  // namespace recsys
