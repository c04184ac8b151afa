#include "common/test_paths.h"

#include <cstdlib>

#include "common/file_util.h"

namespace recsys {

std::string TestTempPath(absl::string_view name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return JoinPath(dir != nullptr ? dir : "/tmp", name);
}

}  // namespace recsys
