// Shim (see absl/README).
#ifndef RECSYS_ABSL_SHIM_USAGE_H_
#define RECSYS_ABSL_SHIM_USAGE_H_
#include <string_view>
namespace absl {
void SetProgramUsageMessage(std::string_view usage);
}  // namespace absl
#endif
