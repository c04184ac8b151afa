#include "server/similarity/quote_input.h"

#include <string>

#include "gtest/gtest.h"

namespace recsys {
namespace similarity {
namespace {

TEST(QuoteUserInputTest, QuotesShortInputAndCutsLongInput) {
  EXPECT_EQ(QuoteUserInput("abc"), "\"abc\"");
  EXPECT_EQ(QuoteUserInput("a\nb\x01"), "\"a?b?\"");
  const std::string quoted = QuoteUserInput(std::string(10 << 20, 'x'));
  EXPECT_EQ(quoted, "\"" + std::string(kMaxQuotedBytes, 'x') + "...\"");
  // UTF-8 bytes are kept (only control bytes are replaced).
  EXPECT_EQ(QuoteUserInput("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
