// Shim (see absl/README): absl::StatusOr<T>, a Status or a T.
#ifndef RECSYS_ABSL_SHIM_STATUSOR_H_
#define RECSYS_ABSL_SHIM_STATUSOR_H_
#include <cstdlib>
#include <iostream>
#include <optional>
#include <type_traits>
#include <utility>
#include "absl/status/status.h"
namespace absl {
template <typename T>
class StatusOr {
 public:
  StatusOr() : status_(StatusCode::kUnknown, "") {}
  StatusOr(const Status& s) : status_(s) { CheckNotOk(); }
  StatusOr(Status&& s) : status_(std::move(s)) { CheckNotOk(); }
  template <typename U = T,
            typename std::enable_if<std::is_constructible<T, U&&>::value &&
                                        !std::is_same<std::decay_t<U>, Status>::value &&
                                        !std::is_same<std::decay_t<U>, StatusOr>::value,
                                    int>::type = 0>
  StatusOr(U&& v) : value_(std::forward<U>(v)) {}
  template <typename U, typename std::enable_if<!std::is_same<U, T>::value &&
                                                    std::is_constructible<T, U&&>::value,
                                                int>::type = 0>
  StatusOr(StatusOr<U>&& o) : status_(o.status()) {
    if (o.ok()) value_.emplace(std::move(*o));
  }
  bool ok() const { return status_.ok(); }
  const Status& status() const& { return status_; }
  Status status() && { return status_; }
  const T& value() const& { Check(); return *value_; }
  T& value() & { Check(); return *value_; }
  T&& value() && { Check(); return std::move(*value_); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  template <typename U>
  T value_or(U&& d) const& { return ok() ? *value_ : static_cast<T>(std::forward<U>(d)); }
 private:
  void CheckNotOk() {
    if (status_.ok()) status_ = Status(StatusCode::kInternal, "OK status given to StatusOr");
  }
  void Check() const {
    if (!ok()) {
      std::cerr << "StatusOr::value() on an error: " << status_ << std::endl;
      std::abort();
    }
  }
  Status status_;
  std::optional<T> value_;
};
}  // namespace absl
#endif
