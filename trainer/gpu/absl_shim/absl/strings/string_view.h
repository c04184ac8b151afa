// Shim (see absl/README).
#ifndef RECSYS_ABSL_SHIM_STRING_VIEW_H_
#define RECSYS_ABSL_SHIM_STRING_VIEW_H_
#include <string_view>
namespace absl {
using std::string_view;
}  // namespace absl
#endif
