// Helpers for the backbone tests: temp/data/runfile paths and running the
// Python reference scripts with Debian's /usr/bin/python3 (torch 1.13).
#ifndef RECSYS_MODEL_ENCODERS_TEST_UTIL_H_
#define RECSYS_MODEL_ENCODERS_TEST_UTIL_H_

#include <string>

namespace recsys {
namespace testing_util {

// $TEST_TMPDIR/name (a fresh directory when `make_dir`).
std::string TempPath(const std::string& name, bool make_dir = false);
// $RECSYS_DATA_DIR, or "" when unset or not a directory.
std::string DataDir();
// Path of a file of this workspace in the test's runfiles.
std::string RunfilePath(const std::string& workspace_relative);
// True when /usr/bin/python3 can import torch and numpy.
bool PythonHasTorch();
// Runs /usr/bin/python3 with the runfile script and arguments; returns the
// exit code (output goes to the test log).
int RunPython(const std::string& script, const std::string& args);

}  // namespace testing_util
}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_TEST_UTIL_H_
