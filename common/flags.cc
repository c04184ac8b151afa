#include "common/flags.h"

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace recsys {

absl::Status CheckFlagRanges(std::initializer_list<FlagRange> flags) {
  for (const FlagRange& f : flags) {
    if (f.value < f.lo || f.value > f.hi) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", f.name, ": expected ", f.lo, "..", f.hi, ", got ", f.value));
    }
  }
  return absl::OkStatus();
}

bool IsProjectFlagFile(absl::string_view file) {
  return !absl::StartsWith(file, "absl/") && !absl::StrContains(file, "/absl/");
}

std::vector<char*> ParseCommandLineWithHelp(int argc, char** argv, absl::string_view usage) {
  absl::FlagsUsageConfig config;  // unset members keep Abseil's defaults
  config.contains_help_flags = IsProjectFlagFile;
  config.contains_helpshort_flags = IsProjectFlagFile;
  config.contains_helppackage_flags = IsProjectFlagFile;
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  return absl::ParseCommandLine(argc, argv);
}

}  // namespace recsys
