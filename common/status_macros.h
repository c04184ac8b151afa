// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status and absl::StatusOr.
// Debian 12's Abseil (20220623) ships neither.
#ifndef RECSYS_COMMON_STATUS_MACROS_H_
#define RECSYS_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RECSYS_STATUS_CONCAT_INNER_(x, y) x##y
#define RECSYS_STATUS_CONCAT_(x, y) RECSYS_STATUS_CONCAT_INNER_(x, y)

// Evaluates `expr` (an absl::Status) and returns it from the current function
// when it is not OK.
#define RETURN_IF_ERROR(expr)                                   \
  do {                                                          \
    ::absl::Status recsys_status_macro_status_ = (expr);        \
    if (!recsys_status_macro_status_.ok()) {                    \
      return recsys_status_macro_status_;                       \
    }                                                           \
  } while (false)

// ASSIGN_OR_RETURN(lhs, rexpr): evaluates `rexpr` (an absl::StatusOr<T>);
// returns its status when not OK, otherwise moves the value into `lhs`,
// which may be a declaration (`auto x`, `std::unique_ptr<T> y`).
#define ASSIGN_OR_RETURN(lhs, rexpr)                                        \
  RECSYS_ASSIGN_OR_RETURN_IMPL_(                                            \
      RECSYS_STATUS_CONCAT_(recsys_statusor_, __LINE__), lhs, rexpr)

#define RECSYS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                  \
  if (!statusor.ok()) {                                     \
    return std::move(statusor).status();                    \
  }                                                         \
  lhs = std::move(statusor).value()

#endif  // RECSYS_COMMON_STATUS_MACROS_H_
