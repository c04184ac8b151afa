// Paths for tests: under $TEST_TMPDIR (set by Bazel per test), or /tmp.
#ifndef RECSYS_COMMON_TEST_PATHS_H_
#define RECSYS_COMMON_TEST_PATHS_H_

#include <string>

#include "absl/strings/string_view.h"

namespace recsys {

// $TEST_TMPDIR/<name> (/tmp/<name> outside Bazel). Creates nothing.
std::string TestTempPath(absl::string_view name);

}  // namespace recsys

#endif  // RECSYS_COMMON_TEST_PATHS_H_
