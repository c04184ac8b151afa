#include "server/similarity/parallel_corpus.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/user_input.h"

namespace recsys {
namespace similarity {
namespace {

// Runs `argv` (argv[0] a path) with stdin and stderr on /dev/null and
// returns its stdout.
absl::StatusOr<std::string> RunCapture(const std::vector<std::string>& argv,
                                       int64_t max_bytes) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return ErrnoToStatus(errno, "fork");
  }
  if (pid == 0) {
    const int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 2);
    dup2(fds[1], 1);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[1 << 16];
  bool too_big = false;
  while (true) {
    const ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (static_cast<int64_t>(out.size() + n) > max_bytes) {
      too_big = true;
      kill(pid, SIGKILL);
      break;
    }
    out.append(buf, n);
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (too_big) {
    return absl::InvalidArgumentError(absl::StrCat(
        argv[0], " wrote more than ", max_bytes, " bytes"));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(
        absl::StrJoin(argv, " "), " failed (status ", status, ")"));
  }
  return out;
}

// "Ruth 1:16" followed by ": " at the start of `line`: returns the length of
// the reference, or 0.
size_t ReferenceLength(absl::string_view line) {
  const size_t colon_space = line.find(": ");
  const size_t end = colon_space == absl::string_view::npos
                         ? (absl::EndsWith(line, ":") ? line.size() - 1
                                                      : absl::string_view::npos)
                         : colon_space;
  if (end == absl::string_view::npos) return 0;
  const absl::string_view ref = line.substr(0, end);
  const size_t space = ref.rfind(' ');
  if (space == absl::string_view::npos || space == 0) return 0;
  const absl::string_view book = ref.substr(0, space);
  const absl::string_view cv = ref.substr(space + 1);
  const size_t colon = cv.find(':');
  if (colon == absl::string_view::npos || colon == 0 ||
      colon + 1 >= cv.size()) {
    return 0;
  }
  for (size_t i = 0; i < cv.size(); ++i) {
    if (i != colon && !absl::ascii_isdigit(cv[i])) return 0;
  }
  for (char c : book) {
    if (!absl::ascii_isalnum(c) && c != ' ') return 0;
  }
  return end;
}

// Drops markup diatheke leaves in plain output (Strong's numbers such as
// "<H1870>" in spaRV1909eb: any "<...>" without spaces) and pilcrows, and
// collapses the whitespace that leaves.
std::string CleanVerseText(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '<') {
      const size_t close = text.find('>', i);
      if (close != absl::string_view::npos &&
          text.substr(i, close - i).find(' ') == absl::string_view::npos) {
        i = close;
        continue;
      }
    }
    if (text.substr(i, 2) == "\xC2\xB6") {
      ++i;
      continue;
    }
    const bool space = absl::ascii_isspace(text[i]);
    if (space && (out.empty() || out.back() == ' ')) continue;
    out.push_back(space ? ' ' : text[i]);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

std::vector<Verse> ParseDiathekePlain(absl::string_view output) {
  std::vector<Verse> verses;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    const size_t n = ReferenceLength(line);
    if (n == 0) continue;
    Verse v;
    v.reference = std::string(line.substr(0, n));
    v.text = CleanVerseText(line.substr(n + 1));
    verses.push_back(std::move(v));
  }
  return verses;
}

std::vector<TranslationPair> AlignVerses(const std::vector<Verse>& source,
                                         const std::vector<Verse>& target,
                                         const std::string& pair) {
  absl::flat_hash_map<std::string, const Verse*> by_ref;
  for (const Verse& v : target) by_ref.emplace(v.reference, &v);
  std::vector<TranslationPair> out;
  for (const Verse& s : source) {
    auto it = by_ref.find(s.reference);
    if (it == by_ref.end() || s.text.empty() || it->second->text.empty()) {
      continue;
    }
    out.push_back({s.reference, s.text, it->second->text, pair, std::nullopt});
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ListDiathekeModules(
    const std::string& diatheke) {
  if (!PathExists(diatheke)) {
    return absl::NotFoundError(absl::StrCat(
        diatheke, " absent (Debian package diatheke installs it)"));
  }
  ASSIGN_OR_RETURN(std::string out,
                   RunCapture({diatheke, "-b", "system", "-k", "modulelist"},
                              1 << 20));
  std::vector<std::string> modules;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    const size_t sep = line.find(" : ");
    if (sep == absl::string_view::npos) continue;
    modules.push_back(std::string(absl::StripAsciiWhitespace(line.substr(0, sep))));
  }
  return modules;
}

absl::StatusOr<std::vector<TranslationPair>> ReadDiathekeParallelCorpus(
    const DiathekeCorpusOptions& options) {
  ASSIGN_OR_RETURN(std::vector<std::string> modules,
                   ListDiathekeModules(options.diatheke));
  for (const std::string* m : {&options.source_module, &options.target_module}) {
    if (std::find(modules.begin(), modules.end(), *m) == modules.end()) {
      return absl::NotFoundError(absl::StrCat(
          "SWORD module ", *m, " is not installed (Debian: sword-text-kjv "
          "has engKJV2006eb, sword-text-sparv has spaRV1909eb)"));
    }
  }
  std::vector<Verse> verses[2];
  const std::string* names[2] = {&options.source_module, &options.target_module};
  for (int i = 0; i < 2; ++i) {
    ASSIGN_OR_RETURN(std::string out,
                     RunCapture({options.diatheke, "-b", *names[i], "-f",
                                 "plain", "-k", options.range},
                                options.max_output_bytes));
    verses[i] = ParseDiathekePlain(out);
    if (verses[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("range ", QuoteUserInput(options.range),
                       " gives no verses in module ", *names[i]));
    }
  }
  return AlignVerses(verses[0], verses[1], options.pair);
}

}  // namespace similarity
}  // namespace recsys
