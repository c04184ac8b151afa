// Shim (see absl/README): --name=value, --name value, --bool, --nobool,
// "--" ends the flags; an unknown flag or a bad value prints why and exits
// with status 1; --help (or --helpfull) lists the flags and exits with 1.
#ifndef RECSYS_ABSL_SHIM_PARSE_H_
#define RECSYS_ABSL_SHIM_PARSE_H_
#include <vector>
namespace absl {
std::vector<char*> ParseCommandLine(int argc, char* argv[]);
}  // namespace absl
#endif
