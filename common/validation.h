// Request validation, one way for every service: each check returns OK or
// INVALID_ARGUMENT whose message names the field, says what was expected and
// what was got (user text quoted and truncated, common/user_input.h):
//
//   absl::Status Validate(const RecommendRequest& r, const Limits& l) {
//     RETURN_IF_ERROR(CheckRange("k", r.k(), 1, l.max_k));
//     RETURN_IF_ERROR(CheckMaxSize("history", r.history_size(), l.max_history));
//     return absl::OkStatus();
//   }
//
// Handlers validate into an absl::Status first and convert it to gRPC once
// (common/grpc_status.h) when they finish the call.
// Thread-safety: pure functions.
#ifndef RECSYS_COMMON_VALIDATION_H_
#define RECSYS_COMMON_VALIDATION_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace recsys {

// "<field>: <expected>, got <got>".
absl::Status InvalidField(absl::string_view field, absl::string_view expected,
                          absl::string_view got);
// lo <= value <= hi.
absl::Status CheckRange(absl::string_view field, int64_t value, int64_t lo, int64_t hi);
// size <= max.
absl::Status CheckMaxSize(absl::string_view field, int64_t size, int64_t max);
// A non-empty string of at most max_bytes bytes.
absl::Status CheckNonEmpty(absl::string_view field, absl::string_view value,
                           size_t max_bytes = 4096);

}  // namespace recsys

#endif  // RECSYS_COMMON_VALIDATION_H_
