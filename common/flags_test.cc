#include "common/flags.h"

#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Defined in a file not named after the program ("demo_service" below), as
// retrieval/main.cc is for retrieval_server: Abseil's default --help skipped
// such flags and printed "No flags matched".
ABSL_FLAG(int, flags_test_port, 7, "the port this test service would listen on");

namespace recsys {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(FlagsTest, ProjectFilesOnly) {
  EXPECT_TRUE(IsProjectFlagFile("retrieval/main.cc"));
  EXPECT_TRUE(IsProjectFlagFile("trainer/backbone/build_cache_main.cc"));
  EXPECT_FALSE(IsProjectFlagFile("absl/flags/parse.cc"));
  EXPECT_FALSE(IsProjectFlagFile("/build/abseil-cpp-20220623/absl/flags/parse.cc"));
}

struct ChildResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs ParseCommandLineWithHelp(args) in a child process (it exits on
// --help) and collects what it printed.
ChildResult ParseInChild(std::vector<std::string> args, const std::string& usage) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    ParseCommandLineWithHelp(static_cast<int>(argv.size()), argv.data(), usage);
    _exit(42);  // not reached for --help
  }
  close(fds[1]);
  ChildResult r;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) r.output.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(FlagsTest, HelpListsTheProgramsOwnFlags) {
  const ChildResult r = ParseInChild({"demo_service", "--help"}, "Serves a demo.");
  // Abseil exits (with 1, as for --helpfull) after printing help.
  EXPECT_NE(r.exit_code, 42) << r.output;
  EXPECT_THAT(r.output, HasSubstr("demo_service: Serves a demo."));  // Abseil prefixes the name
  EXPECT_THAT(r.output, HasSubstr("--flags_test_port"));
  EXPECT_THAT(r.output, HasSubstr("the port this test service would listen on"));
  EXPECT_THAT(r.output, Not(HasSubstr("No flags matched")));
  // Abseil's own flags stay under --helpfull.
  EXPECT_THAT(r.output, Not(HasSubstr("--flagfile")));
  const ChildResult full = ParseInChild({"demo_service", "--helpfull"}, "usage");
  EXPECT_NE(full.exit_code, 42);
  EXPECT_THAT(full.output, HasSubstr("--flagfile"));
  EXPECT_THAT(full.output, HasSubstr("--flags_test_port"));
}

TEST(FlagsTest, ParsesFlagsAndKeepsPositionalArguments) {
  std::vector<std::string> args = {"demo_service", "--flags_test_port=9", "extra"};
  std::vector<char*> argv = {args[0].data(), args[1].data(), args[2].data()};
  std::vector<char*> rest = ParseCommandLineWithHelp(3, argv.data(), "usage");
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(std::string(rest[1]), "extra");
  EXPECT_EQ(absl::GetFlag(FLAGS_flags_test_port), 9);
}

}  // namespace
}  // namespace recsys
