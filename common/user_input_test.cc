#include "common/user_input.h"

#include <string>

#include "gtest/gtest.h"

namespace recsys {
namespace {

TEST(QuoteUserInputTest, ShortInputIsQuotedWhole) {
  EXPECT_EQ(QuoteUserInput("items"), "'items'");
  EXPECT_EQ(QuoteUserInput(""), "''");
}

TEST(QuoteUserInputTest, LongInputIsCutAt64CharactersWithItsLength) {
  const std::string name(10240, 'a');
  EXPECT_EQ(QuoteUserInput(name),
            "'" + std::string(64, 'a') + "...' (10240 bytes)");
  EXPECT_EQ(QuoteUserInput(std::string(64, 'b')),
            "'" + std::string(64, 'b') + "'");
  EXPECT_EQ(QuoteUserInput(std::string(65, 'b')),
            "'" + std::string(64, 'b') + "...' (65 bytes)");
}

TEST(QuoteUserInputTest, CutsAtCharacterBoundaries) {
  std::string s;
  for (int i = 0; i < 100; ++i) s += "\xc3\xa9";  // é, 2 bytes
  const std::string q = QuoteUserInput(s);
  std::string expected = "'";
  for (int i = 0; i < 64; ++i) expected += "\xc3\xa9";
  EXPECT_EQ(q, expected + "...' (200 bytes)");
  EXPECT_TRUE(IsValidUtf8(q));
}

TEST(QuoteUserInputTest, EscapesInvalidBytesAndControls) {
  EXPECT_EQ(QuoteUserInput("a\xff" "b"), "'a\\xffb'");
  EXPECT_EQ(QuoteUserInput("\xc3"), "'\\xc3'");            // truncated sequence
  EXPECT_EQ(QuoteUserInput("\xed\xa0\x80"), "'\\xed\\xa0\\x80'");  // surrogate
  EXPECT_EQ(QuoteUserInput("it's\n"), "'it\\'s\\x0a'");
  EXPECT_EQ(QuoteUserInput(std::string("\0", 1)), "'\\x00'");
  // Whatever the input, the rendering is valid UTF-8 and bounded.
  std::string junk;
  for (int i = 0; i < 5000; ++i) junk += static_cast<char>(i * 37);
  const std::string q = QuoteUserInput(junk);
  EXPECT_TRUE(IsValidUtf8(q));
  EXPECT_LE(q.size(), 64 * 4 + 32);
  EXPECT_NE(q.find("(5000 bytes)"), std::string::npos);
}

TEST(IsValidUtf8Test, ReportsTheFirstBadOffset) {
  size_t at = 0;
  EXPECT_TRUE(IsValidUtf8("plain \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("ab\xc0\xaf", &at));  // overlong '/'
  EXPECT_EQ(at, 2u);
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80", &at));  // above U+10FFFF
  EXPECT_EQ(at, 0u);
}

TEST(TruncateMessageTest, BoundsAndKeepsUtf8) {
  EXPECT_EQ(TruncateMessage("short", 100), "short");
  std::string s;
  for (int i = 0; i < 1000; ++i) s += "\xe2\x82\xac";
  const std::string t = TruncateMessage(s, 100);
  EXPECT_LE(t.size(), 100u);
  EXPECT_TRUE(IsValidUtf8(t));
  EXPECT_NE(t.find("truncated"), std::string::npos);
}

}  // namespace
}  // namespace recsys
