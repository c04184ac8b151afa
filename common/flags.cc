#include "common/flags.h"

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"

namespace recsys {

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
