#include "common/validation.h"

#include <string>

#include "common/status_matchers.h"
#include "common/user_input.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;

TEST(ValidationTest, ChecksNameTheFieldAndWhatWasExpected) {
  EXPECT_OK(CheckRange("k", 5, 1, 10));
  EXPECT_THAT(CheckRange("k", 0, 1, 1000),
              StatusIs(absl::StatusCode::kInvalidArgument, "k: must be in [1, 1000], got 0"));
  EXPECT_OK(CheckMaxSize("history", 3, 3));
  EXPECT_THAT(CheckMaxSize("history", 4, 3),
              StatusIs(absl::StatusCode::kInvalidArgument, "history: at most 3 entries, got 4"));
  EXPECT_THAT(CheckNonEmpty("history[2]", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("history[2]: must not be empty")));
  const std::string huge(10240, 'a');
  absl::Status s = CheckNonEmpty("key", huge, 1024);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(10240 bytes)")));
  EXPECT_LT(s.message().size(), 200u);  // the input is quoted truncated
}

TEST(UserInputTest, QuotesTruncatesAndEscapes) {
  EXPECT_EQ(QuoteUserInput("items"), "'items'");
  EXPECT_EQ(QuoteUserInput(std::string(64, 'x')), "'" + std::string(64, 'x') + "'");
  EXPECT_EQ(QuoteUserInput(std::string(65, 'x')),
            "'" + std::string(64, 'x') + "...' (65 bytes)");
  EXPECT_EQ(QuoteUserInput("a\xff" "b"), "'a\\xffb'");        // invalid UTF-8
  EXPECT_EQ(QuoteUserInput("it's\n"), "'it\\'s\\x0a'");       // quote, control
  // Characters, not bytes, are counted, and a multi-byte one is never split.
  std::string accents;
  for (int i = 0; i < 70; ++i) accents += "\xc3\xa9";
  const std::string q = QuoteUserInput(accents);
  EXPECT_EQ(q.substr(0, 1 + 128), "'" + accents.substr(0, 128));
  EXPECT_THAT(q, HasSubstr("...' (140 bytes)"));
}

}  // namespace
}  // namespace recsys
