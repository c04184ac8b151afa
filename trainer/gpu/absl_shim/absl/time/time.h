// Shim (see absl/README): absl::Time / Duration over std::chrono
// (nanosecond resolution), FormatTime in UTC (strftime plus Abseil's
// %E<n>S fractional seconds), and the RFC 3339 formats.
#ifndef RECSYS_ABSL_SHIM_TIME_H_
#define RECSYS_ABSL_SHIM_TIME_H_
#include "absl/strings/string_view.h"
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
namespace absl {
class Duration {
 public:
  constexpr Duration() = default;
  static constexpr Duration FromNanos(int64_t n) { Duration d; d.ns_ = n; return d; }
  constexpr int64_t nanos() const { return ns_; }
  friend constexpr Duration operator+(Duration a, Duration b) { return FromNanos(a.ns_ + b.ns_); }
  friend constexpr Duration operator-(Duration a, Duration b) { return FromNanos(a.ns_ - b.ns_); }
  friend constexpr Duration operator*(Duration a, double k) { return FromNanos(static_cast<int64_t>(a.ns_ * k)); }
  friend constexpr Duration operator*(double k, Duration a) { return a * k; }
  friend constexpr Duration operator/(Duration a, double k) { return FromNanos(static_cast<int64_t>(a.ns_ / k)); }
  friend constexpr bool operator<(Duration a, Duration b) { return a.ns_ < b.ns_; }
  friend constexpr bool operator<=(Duration a, Duration b) { return a.ns_ <= b.ns_; }
  friend constexpr bool operator>(Duration a, Duration b) { return a.ns_ > b.ns_; }
  friend constexpr bool operator>=(Duration a, Duration b) { return a.ns_ >= b.ns_; }
  friend constexpr bool operator==(Duration a, Duration b) { return a.ns_ == b.ns_; }
  friend constexpr bool operator!=(Duration a, Duration b) { return a.ns_ != b.ns_; }
  Duration& operator+=(Duration o) { ns_ += o.ns_; return *this; }
  Duration& operator-=(Duration o) { ns_ -= o.ns_; return *this; }
 private:
  int64_t ns_ = 0;
};
constexpr Duration ZeroDuration() { return Duration(); }
constexpr Duration Nanoseconds(int64_t n) { return Duration::FromNanos(n); }
constexpr Duration Microseconds(int64_t n) { return Duration::FromNanos(n * 1000); }
constexpr Duration Milliseconds(int64_t n) { return Duration::FromNanos(n * 1000000); }
constexpr Duration Seconds(double s) { return Duration::FromNanos(static_cast<int64_t>(s * 1e9)); }
constexpr Duration Minutes(double m) { return Seconds(m * 60); }
constexpr Duration Hours(double h) { return Seconds(h * 3600); }
constexpr Duration InfiniteDuration() { return Duration::FromNanos(std::numeric_limits<int64_t>::max()); }
inline double ToDoubleSeconds(Duration d) { return static_cast<double>(d.nanos()) / 1e9; }
inline double ToDoubleMilliseconds(Duration d) { return static_cast<double>(d.nanos()) / 1e6; }
inline int64_t ToInt64Milliseconds(Duration d) { return d.nanos() / 1000000; }
inline int64_t ToInt64Seconds(Duration d) { return d.nanos() / 1000000000; }

class Time {
 public:
  constexpr Time() = default;
  static constexpr Time FromUnixNanos(int64_t n) { Time t; t.ns_ = n; return t; }
  constexpr int64_t unix_nanos() const { return ns_; }
  friend constexpr Duration operator-(Time a, Time b) { return Duration::FromNanos(a.ns_ - b.ns_); }
  friend constexpr Time operator+(Time a, Duration d) { return FromUnixNanos(a.ns_ + d.nanos()); }
  friend constexpr Time operator-(Time a, Duration d) { return FromUnixNanos(a.ns_ - d.nanos()); }
  friend constexpr bool operator<(Time a, Time b) { return a.ns_ < b.ns_; }
  friend constexpr bool operator<=(Time a, Time b) { return a.ns_ <= b.ns_; }
  friend constexpr bool operator>(Time a, Time b) { return a.ns_ > b.ns_; }
  friend constexpr bool operator>=(Time a, Time b) { return a.ns_ >= b.ns_; }
  friend constexpr bool operator==(Time a, Time b) { return a.ns_ == b.ns_; }
  friend constexpr bool operator!=(Time a, Time b) { return a.ns_ != b.ns_; }
 private:
  int64_t ns_ = 0;
};
constexpr Time UnixEpoch() { return Time(); }
constexpr Time InfinitePast() { return Time::FromUnixNanos(std::numeric_limits<int64_t>::min()); }
constexpr Time InfiniteFuture() { return Time::FromUnixNanos(std::numeric_limits<int64_t>::max()); }
inline int64_t ToUnixSeconds(Time t) { return t.unix_nanos() / 1000000000; }
inline int64_t ToUnixMillis(Time t) { return t.unix_nanos() / 1000000; }
inline Time FromUnixSeconds(int64_t s) { return Time::FromUnixNanos(s * 1000000000); }

struct TimeZone {};  // UTC only
inline TimeZone UTCTimeZone() { return TimeZone(); }
inline constexpr char RFC3339_full[] = "%Y-%m-%dT%H:%M:%E*S%Ez";
inline constexpr char RFC3339_sec[] = "%Y-%m-%dT%H:%M:%S%Ez";
std::string FormatTime(std::string_view format, Time t, TimeZone tz);
}  // namespace absl
#endif
