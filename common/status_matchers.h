// GoogleTest matchers for absl::Status and absl::StatusOr<T>:
//   EXPECT_THAT(s, IsOk());
//   EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
//   EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound, HasSubstr("items")));
// and ASSERT_OK / EXPECT_OK / ASSERT_OK_AND_ASSIGN.
#ifndef RECSYS_COMMON_STATUS_MATCHERS_H_
#define RECSYS_COMMON_STATUS_MATCHERS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace testing_internal {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

}  // namespace testing_internal

MATCHER(IsOk, negation ? "is not OK" : "is OK") {
  const absl::Status& s = testing_internal::GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s;
  return s.ok();
}

MATCHER_P(StatusIs, code,
          std::string(negation ? "does not have" : "has") + " code " +
              absl::StatusCodeToString(code)) {
  const absl::Status& s = testing_internal::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           std::string(negation ? "does not have" : "has") + " code " +
               absl::StatusCodeToString(code) + " and a matching message") {
  const absl::Status& s = testing_internal::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code &&
         ::testing::Matches(message_matcher)(std::string(s.message()));
}

// An OK StatusOr whose value matches `value_matcher`.
MATCHER_P(IsOkAndHolds, value_matcher,
          negation ? "is not OK or holds no matching value" : "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(value_matcher, *arg, result_listener);
}

}  // namespace recsys

#define EXPECT_OK(expr) EXPECT_THAT((expr), ::recsys::IsOk())
#define ASSERT_OK(expr) ASSERT_THAT((expr), ::recsys::IsOk())

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                    \
  RECSYS_ASSERT_OK_AND_ASSIGN_IMPL_(                                        \
      RECSYS_STATUS_CONCAT_(recsys_assert_statusor_, __LINE__), lhs, rexpr)

#define RECSYS_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                      \
  ASSERT_THAT(statusor.status(), ::recsys::IsOk());             \
  lhs = std::move(statusor).value()

#ifndef RECSYS_STATUS_CONCAT_
#define RECSYS_STATUS_CONCAT_INNER_(x, y) x##y
#define RECSYS_STATUS_CONCAT_(x, y) RECSYS_STATUS_CONCAT_INNER_(x, y)
#endif

#endif  // RECSYS_COMMON_STATUS_MATCHERS_H_
