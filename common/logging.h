// Minimal leveled logging to stderr (Debian 12's Abseil predates absl/log):
//   LOG(INFO) << "loaded " << n << " vectors";
// Each line carries a UTC timestamp, the level, file:line. Thread-safe: a
// line is written with one write(2). LOG(FATAL) aborts after writing.
#ifndef RECSYS_COMMON_LOGGING_H_
#define RECSYS_COMMON_LOGGING_H_

#include <sstream>

namespace recsys {
namespace logging_internal {

enum class Level { kInfo, kWarning, kError, kFatal };

class LogMessage {
 public:
  LogMessage(Level level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  Level level_;
  std::ostringstream stream_;
};

}  // namespace logging_internal
}  // namespace recsys

#define RECSYS_LOG_LEVEL_INFO ::recsys::logging_internal::Level::kInfo
#define RECSYS_LOG_LEVEL_WARNING ::recsys::logging_internal::Level::kWarning
#define RECSYS_LOG_LEVEL_ERROR ::recsys::logging_internal::Level::kError
#define RECSYS_LOG_LEVEL_FATAL ::recsys::logging_internal::Level::kFatal

// LibTorch's headers bring glog's LOG (whose INFO lines go to files, not
// stderr); this one replaces it in files that include this header after them.
#ifdef LOG
#undef LOG
#endif
#define LOG(level)                                                         \
  ::recsys::logging_internal::LogMessage(RECSYS_LOG_LEVEL_##level, __FILE__, \
                                         __LINE__)                         \
      .stream()

#endif  // RECSYS_COMMON_LOGGING_H_
