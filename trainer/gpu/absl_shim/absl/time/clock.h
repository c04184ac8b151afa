// Shim (see absl/README).
#ifndef RECSYS_ABSL_SHIM_CLOCK_H_
#define RECSYS_ABSL_SHIM_CLOCK_H_
#include "absl/time/time.h"
namespace absl {
Time Now();
void SleepFor(Duration d);
}  // namespace absl
#endif
