// Shim (see absl/README).
#include "absl/flags/flag.h"
