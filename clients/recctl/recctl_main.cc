// recctl: one command-line client for every service of the stack.
//   recctl [--retrieval=H:P ...] <group> <command> [flags]     (recctl --help)
// See clients/README.md and clients/recctl/recctl.h.
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "clients/recctl/recctl.h"
#include "common/user_input.h"

namespace recsys {
namespace recctl {
namespace {

std::vector<Command> AllCommands() {
  std::vector<Command> all;
  for (auto group : {CollectionCommands, ModelCommands, RecommendCommands, TrainerCommands,
                     SimilarityCommands}) {
    for (Command& c : group()) all.push_back(std::move(c));
  }
  return all;
}

// `key: value` lines; '#' starts a comment. Missing file: empty.
std::map<std::string, std::string> ReadConfig(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view l = line;
    l = l.substr(0, l.find('#'));
    const size_t colon = l.find(':');
    if (colon == absl::string_view::npos) continue;
    std::string key(absl::StripAsciiWhitespace(l.substr(0, colon)));
    std::string value(absl::StripAsciiWhitespace(l.substr(colon + 1)));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'')) {
      value = value.substr(1, value.size() - 2);
    }
    if (!key.empty()) out[key] = value;
  }
  return out;
}

std::string ConfigPath(const Args& args) {
  if (!args.Get("config").empty()) return args.Get("config");
  if (const char* env = std::getenv("RECCTL_CONFIG")) return env;
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : ".", "/.config/recctl.yaml");
}

void Usage(const std::vector<Command>& all) {
  std::cout << "usage: recctl [global flags] <group> <command> [flags]\n\ncommands:\n";
  Table t({"  GROUP", "COMMAND", "WHAT"});
  for (const Command& c : all) t.Add({"  " + c.group, c.name, c.summary});
  t.Print(std::cout);
  std::cout << "\nglobal flags:\n" << FlagsHelp(GlobalFlags())
            << "\n`recctl <group> <command> --help` lists a command's flags.\n";
}

int Main(int argc, char** argv) {
  const std::vector<Command> all = AllCommands();
  std::vector<std::string> words(argv + 1, argv + argc);
  // The group and command are the first two words that are not flags.
  std::vector<std::string> rest;
  std::vector<std::string> names;
  for (size_t i = 0; i < words.size(); ++i) {
    if (names.size() < 2 && words[i].rfind("--", 0) != 0) {
      names.push_back(words[i]);
    } else {
      rest.push_back(words[i]);
    }
  }
  const Command* command = nullptr;
  for (const Command& c : all) {
    if (names.size() == 2 && c.group == names[0] && c.name == names[1]) command = &c;
  }
  if (command == nullptr) {
    const bool help = words.empty() || words[0] == "--help" || words[0] == "help";
    if (!help) {
      std::cerr << "recctl: unknown command "
                << QuoteUserInput(absl::StrJoin(names, " ")) << "\n\n";
    }
    Usage(all);
    return help ? 0 : 2;
  }
  std::vector<FlagSpec> specs = GlobalFlags();
  specs.insert(specs.end(), command->flags.begin(), command->flags.end());
  absl::StatusOr<Args> args = Args::Parse(rest, specs);
  if (!args.ok()) {
    std::cerr << "recctl " << command->group << " " << command->name << ": "
              << args.status().message() << "\n";
    return 2;
  }
  if (args->GetBool("help").value_or(false)) {
    std::cout << "recctl " << command->group << " " << command->name << " " << command->usage
              << "\n  " << command->summary << "\n\nflags:\n" << FlagsHelp(command->flags)
              << "\nglobal flags:\n" << FlagsHelp(GlobalFlags());
    return 0;
  }
  for (const char* f : {"deadline", "json"}) {
    absl::Status valid = std::string(f) == "json" ? args->GetBool(f).status()
                                                  : args->GetDuration(f).status();
    if (!valid.ok()) {
      std::cerr << "recctl: " << valid.message() << "\n";
      return 2;
    }
  }
  Context context(*args, ReadConfig(ConfigPath(*args)));
  absl::Status s = command->run(context);
  if (!s.ok()) {
    std::cerr << "recctl " << command->group << " " << command->name << ": "
              << absl::StatusCodeToString(s.code()) << ": " << s.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace recctl
}  // namespace recsys

int main(int argc, char** argv) { return recsys::recctl::Main(argc, argv); }
