#include "clients/recctl/command_line.h"

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace recctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<FlagSpec> kSpecs = {
    {"collection", "", "name"}, {"k", "10", "results"}, {"json", "false", "json", true},
    {"deadline", "30s", "deadline"}};

TEST(CommandLineTest, ParsesFlagsDefaultsAndArguments) {
  ASSERT_OK_AND_ASSIGN(Args a, Args::Parse({"--collection", "items", "--json", "x", "--k=5"},
                                           kSpecs));
  EXPECT_EQ(a.Get("collection"), "items");
  EXPECT_THAT(a.GetInt("k"), IsOkAndHolds(5));
  EXPECT_THAT(a.GetBool("json"), IsOkAndHolds(true));
  EXPECT_THAT(a.GetDuration("deadline"), IsOkAndHolds(absl::Seconds(30)));  // default
  EXPECT_THAT(a.positional(), ElementsAre("x"));
  ASSERT_OK_AND_ASSIGN(Args b, Args::Parse({"--json=false", "--", "--k"}, kSpecs));
  EXPECT_THAT(b.GetBool("json"), IsOkAndHolds(false));
  EXPECT_THAT(b.positional(), ElementsAre("--k"));
  EXPECT_THAT(b.Required("collection"),
              StatusIs(absl::StatusCode::kInvalidArgument, "--collection: required"));
}

TEST(CommandLineTest, RefusesUnknownFlagsAndBadValues) {
  EXPECT_THAT(Args::Parse({"--colection=items"}, kSpecs),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag '--colection'")));
  EXPECT_THAT(Args::Parse({"--collection"}, kSpecs),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected a value")));
  ASSERT_OK_AND_ASSIGN(Args a, Args::Parse({"--k=ten", "--deadline=soon"}, kSpecs));
  EXPECT_THAT(a.GetInt("k"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'ten'")));
  EXPECT_THAT(a.GetDuration("deadline"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FlagsHelp(kSpecs), HasSubstr("--k=10"));
}

// An int32 proto field took GetInt's value through a cast: --k=4294967306
// went out as k = 10 and was answered; --k=2147483648 as -2147483648.
TEST(CommandLineTest, Int32FlagsRefuseWhatAnInt32CannotHold) {
  for (const char* v : {"4294967306", "2147483648", "-2147483649"}) {
    ASSERT_OK_AND_ASSIGN(Args a, Args::Parse({absl::StrCat("--k=", v)}, kSpecs));
    EXPECT_THAT(a.GetInt32("k"), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr(absl::StrCat("--k: expected an integer in "
                                                                 "[-2147483648, 2147483647], got '",
                                                                 v, "'"))));
  }
  ASSERT_OK_AND_ASSIGN(Args a, Args::Parse({"--k=2147483647"}, kSpecs));
  EXPECT_THAT(a.GetInt32("k"), IsOkAndHolds(2147483647));
  // A seed is a uint64: its upper half is usable, a negative one is not.
  ASSERT_OK_AND_ASSIGN(Args b, Args::Parse({"--k=18446744073709551615"}, kSpecs));
  EXPECT_THAT(b.GetUint64("k"), IsOkAndHolds(18446744073709551615ull));
  ASSERT_OK_AND_ASSIGN(Args c, Args::Parse({"--k=-1"}, kSpecs));
  EXPECT_THAT(c.GetUint64("k"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'-1'")));
}

}  // namespace
}  // namespace recctl
}  // namespace recsys
