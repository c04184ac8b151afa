// Shim (see absl/README): which flags --help lists.
#ifndef RECSYS_ABSL_SHIM_USAGE_CONFIG_H_
#define RECSYS_ABSL_SHIM_USAGE_CONFIG_H_
#include <functional>
#include <string_view>
namespace absl {
struct FlagsUsageConfig {
  std::function<bool(std::string_view)> contains_helpshort_flags;
  std::function<bool(std::string_view)> contains_help_flags;
  std::function<bool(std::string_view)> contains_helppackage_flags;
};
void SetFlagsUsageConfig(FlagsUsageConfig config);
}  // namespace absl
#endif
