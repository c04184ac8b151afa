// Shim (see absl/README): absl::Status with Abseil's canonical codes.
#ifndef RECSYS_ABSL_SHIM_STATUS_H_
#define RECSYS_ABSL_SHIM_STATUS_H_
#include "absl/strings/string_view.h"
#include <ostream>
#include <string>
#include <string_view>
namespace absl {
enum class StatusCode : int {
  kOk = 0, kCancelled = 1, kUnknown = 2, kInvalidArgument = 3, kDeadlineExceeded = 4,
  kNotFound = 5, kAlreadyExists = 6, kPermissionDenied = 7, kResourceExhausted = 8,
  kFailedPrecondition = 9, kAborted = 10, kOutOfRange = 11, kUnimplemented = 12,
  kInternal = 13, kUnavailable = 14, kDataLoss = 15, kUnauthenticated = 16,
};
std::string StatusCodeToString(StatusCode code);
class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string_view message)
      : code_(code), message_(code == StatusCode::kOk ? "" : std::string(message)) {}
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  int raw_code() const { return static_cast<int>(code_); }
  std::string_view message() const { return message_; }
  std::string ToString() const;
  void IgnoreError() const {}
  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }
  friend bool operator!=(const Status& a, const Status& b) { return !(a == b); }
 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};
inline std::ostream& operator<<(std::ostream& os, const Status& s) { return os << s.ToString(); }
inline Status OkStatus() { return Status(); }
#define RECSYS_SHIM_STATUS_KIND(Name)                                                        \
  inline Status Name##Error(std::string_view m) { return Status(StatusCode::k##Name, m); } \
  inline bool Is##Name(const Status& s) { return s.code() == StatusCode::k##Name; }
RECSYS_SHIM_STATUS_KIND(Cancelled)
RECSYS_SHIM_STATUS_KIND(Unknown)
RECSYS_SHIM_STATUS_KIND(InvalidArgument)
RECSYS_SHIM_STATUS_KIND(DeadlineExceeded)
RECSYS_SHIM_STATUS_KIND(NotFound)
RECSYS_SHIM_STATUS_KIND(AlreadyExists)
RECSYS_SHIM_STATUS_KIND(PermissionDenied)
RECSYS_SHIM_STATUS_KIND(ResourceExhausted)
RECSYS_SHIM_STATUS_KIND(FailedPrecondition)
RECSYS_SHIM_STATUS_KIND(Aborted)
RECSYS_SHIM_STATUS_KIND(OutOfRange)
RECSYS_SHIM_STATUS_KIND(Unimplemented)
RECSYS_SHIM_STATUS_KIND(Internal)
RECSYS_SHIM_STATUS_KIND(Unavailable)
RECSYS_SHIM_STATUS_KIND(DataLoss)
RECSYS_SHIM_STATUS_KIND(Unauthenticated)
#undef RECSYS_SHIM_STATUS_KIND
}  // namespace absl
#endif
