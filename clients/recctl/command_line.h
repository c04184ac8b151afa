// recctl's command line: `recctl [global flags] <group> <command> [flags]
// [arguments]`. Every command declares its flags (name, default, help), so
// `--help` works for each and an unknown flag is an error naming it, not a
// silent no-op. Flags are `--name=value`, `--name value`, or `--name` for
// booleans (`--name=false` to clear).
//
// Thread-safety: plain values.
#ifndef RECSYS_CLIENTS_RECCTL_COMMAND_LINE_H_
#define RECSYS_CLIENTS_RECCTL_COMMAND_LINE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace recsys {
namespace recctl {

struct FlagSpec {
  std::string name;
  std::string default_value;  // "" for none; "false" marks a boolean
  std::string help;
  bool boolean = false;
};

// The parsed flags and arguments of one command.
class Args {
 public:
  // INVALID_ARGUMENT naming an unknown flag or a flag without its value.
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv,
                                    const std::vector<FlagSpec>& specs);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name) const;
  absl::StatusOr<int64_t> GetInt(const std::string& name) const;
  // For int32 proto fields: a value outside int32 is refused, naming the
  // flag (a cast would wrap 4294967306 to 10).
  absl::StatusOr<int32_t> GetInt32(const std::string& name) const;
  absl::StatusOr<uint64_t> GetUint64(const std::string& name) const;
  absl::StatusOr<double> GetDouble(const std::string& name) const;
  absl::StatusOr<bool> GetBool(const std::string& name) const;
  absl::StatusOr<absl::Duration> GetDuration(const std::string& name) const;
  // Comma-separated list; empty items dropped.
  std::vector<std::string> GetList(const std::string& name) const;
  // A flag the command needs: INVALID_ARGUMENT "--name: required" when absent.
  absl::StatusOr<std::string> Required(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;    // given or defaulted
  std::map<std::string, std::string> defaults_;
  std::vector<std::string> positional_;
};

// "  --name=DEFAULT   help" lines.
std::string FlagsHelp(const std::vector<FlagSpec>& specs);

}  // namespace recctl
}  // namespace recsys

#endif  // RECSYS_CLIENTS_RECCTL_COMMAND_LINE_H_
