#include "common/logging.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace recsys {
namespace logging_internal {
namespace {

const char* LevelName(Level level) {
  switch (level) {
    case Level::kInfo:
      return "I";
    case Level::kWarning:
      return "W";
    case Level::kError:
      return "E";
    case Level::kFatal:
      return "F";
  }
  return "?";
}

}  // namespace

LogMessage::LogMessage(Level level, const char* file, int line)
    : level_(level) {
  const char* base = std::strrchr(file, '/');
  stream_ << LevelName(level) << " "
          << absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                              absl::UTCTimeZone())
          << " " << (base ? base + 1 : file) << ":" << line << "] ";
}

LogMessage::~LogMessage() {
  stream_ << "\n";
  const std::string line = stream_.str();
  // One write(2) per line keeps lines from different threads whole.
  ssize_t unused = ::write(STDERR_FILENO, line.data(), line.size());
  (void)unused;
  if (level_ == Level::kFatal) std::abort();
}

}  // namespace logging_internal
}  // namespace recsys
