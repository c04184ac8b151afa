#include "clients/recctl/command_line.h"

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

}  // namespace
}  // namespace recctl
}  // namespace recsys
