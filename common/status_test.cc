#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/status_matchers.h"

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("x: expected even");
  return x / 2;
}

absl::Status Check(int x) {
  if (x < 0) return absl::OutOfRangeError("negative");
  return absl::OkStatus();
}

absl::StatusOr<int> Quarter(int x) {
  RETURN_IF_ERROR(Check(x));
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(auto q, Half(h));
  return q;
}

absl::StatusOr<std::unique_ptr<int>> MakeBox(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  return std::make_unique<int>(h);
}

absl::StatusOr<int> Unbox(int x) {
  ASSIGN_OR_RETURN(std::unique_ptr<int> box, MakeBox(x));
  return *box;
}

TEST(StatusMacrosTest, PropagatesErrorsAndValues) {
  EXPECT_THAT(Quarter(8), IsOk());
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_THAT(Quarter(-4), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("expected even")));
  EXPECT_THAT(Quarter(3), Not(IsOk()));
}

TEST(StatusMacrosTest, MovesMoveOnlyValues) {
  EXPECT_EQ(*Unbox(10), 5);
  EXPECT_THAT(Unbox(7), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(StatusMatchersTest, AssertOkAndAssign) {
  ASSERT_OK_AND_ASSIGN(int v, Quarter(16));
  EXPECT_EQ(v, 4);
  EXPECT_OK(Check(1));
}

TEST(GrpcStatusTest, RoundTripsCodeAndMessage) {
  const absl::Status in = absl::NotFoundError("collection \"items\" not found");
  grpc::Status g = ToGrpcStatus(in);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(g.error_message(), "collection \"items\" not found");
  EXPECT_EQ(FromGrpcStatus(g), in);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(ToGrpcStatus(absl::DeadlineExceededError("x")).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(ToGrpcStatus(absl::FailedPreconditionError("x")).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// A message too long for trailing metadata would reach the client as
// RESOURCE_EXHAUSTED; ToGrpcStatus keeps the code and bounds the message.
TEST(GrpcStatusTest, BoundsLongMessages) {
  grpc::Status g = ToGrpcStatus(absl::InvalidArgumentError(std::string(100000, 'x')));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LE(g.error_message().size(), kMaxGrpcStatusMessageBytes);
  EXPECT_NE(g.error_message().find("truncated"), std::string::npos);
}

}  // namespace
}  // namespace recsys
