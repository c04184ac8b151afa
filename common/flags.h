// Command-line parsing for every binary of the project: absl::ParseCommandLine
// with a --help that lists the program's flags.
//
// Abseil's --help lists only flags defined in a file named after the binary
// (<program>.cc, <program>_main.cc); the project's mains are named otherwise
// (retrieval/main.cc builds retrieval_server), so --help printed "No flags
// matched" and only --helpfull worked. ParseCommandLineWithHelp sets the
// usage message and makes --help / --helpshort / --helppackage list every
// flag defined in the project's own sources (Abseil's built-in flags such as
// --flagfile stay under --helpfull).
//
// Call it once, first thing in main(); not thread-safe (it sets process-wide
// Abseil state). Exits like absl::ParseCommandLine on --help (status 1, as
// Abseil does for every help flag) or a bad flag.
#ifndef RECSYS_COMMON_FLAGS_H_
#define RECSYS_COMMON_FLAGS_H_

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace recsys {

// `usage` follows the program name in --help ("retrieval_server: <usage>").
// Returns the positional arguments (argv[0] first), as absl::ParseCommandLine.
std::vector<char*> ParseCommandLineWithHelp(int argc, char** argv, absl::string_view usage);

// True for a flag defined in `file` that --help lists: any file outside
// Abseil's own sources.
bool IsProjectFlagFile(absl::string_view file);

// A numeric flag's value and the range a binary accepts, for CheckFlagRanges.
struct FlagRange {
  const char* name;  // without the dashes
  int64_t value, lo, hi;
};

// OK when every value is in [lo, hi]; else INVALID_ARGUMENT for the first
// that is not: "--name: expected lo..hi, got value". For a main to call
// before any flag is used.
absl::Status CheckFlagRanges(std::initializer_list<FlagRange> flags);

}  // namespace recsys

#endif  // RECSYS_COMMON_FLAGS_H_
