#include "model/encoders/test_util.h"

#include <sys/stat.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/test_paths.h"

namespace recsys {
namespace testing_util {

std::string TempPath(const std::string& name, bool make_dir) {
  const std::string path = TestTempPath(name);
  if (make_dir) {
    (void)RemoveRecursively(path);
    (void)CreateDirectories(path);
  }
  return path;
}

std::string DataDir() {
  const char* dir = std::getenv("RECSYS_DATA_DIR");
  if (dir == nullptr || *dir == '\0') return "";
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return "";
  return dir;
}

std::string RunfilePath(const std::string& workspace_relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", ws ? ws : "recsys", "/",
                      workspace_relative);
}

bool PythonHasTorch() {
  return std::system("/usr/bin/python3 -c 'import torch, numpy' "
                     ">/dev/null 2>&1") == 0;
}

int RunPython(const std::string& script, const std::string& args) {
  const std::string cmd = absl::StrCat("/usr/bin/python3 '", RunfilePath(script),
                                       "' ", args);
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace testing_util
}  // namespace recsys
