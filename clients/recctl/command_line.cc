#include "clients/recctl/command_line.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/user_input.h"

namespace recsys {
namespace recctl {
namespace {

const FlagSpec* Find(const std::vector<FlagSpec>& specs, const std::string& name) {
  for (const FlagSpec& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// A numeric flag's value: 0 when empty; `parse` (an absl Simple* parser, which
// also refuses what T cannot hold) or INVALID_ARGUMENT saying `expected`.
template <typename T, typename Parse>
absl::StatusOr<T> Number(const std::string& name, const std::string& v, Parse parse,
                         absl::string_view expected) {
  T out{};
  if (v.empty()) return out;
  if (!parse(v, &out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": expected ", expected, ", got ", QuoteUserInput(v)));
  }
  return out;
}

template <typename T>
bool Integer(absl::string_view s, T* out) {
  return absl::SimpleAtoi(s, out);
}

bool Real(absl::string_view s, double* out) { return absl::SimpleAtod(s, out); }

}  // namespace

absl::StatusOr<Args> Args::Parse(const std::vector<std::string>& argv,
                                 const std::vector<FlagSpec>& specs) {
  Args a;
  for (const FlagSpec& s : specs) {
    if (!s.default_value.empty() || s.boolean) {
      a.values_[s.name] = s.boolean && s.default_value.empty() ? "false" : s.default_value;
      a.defaults_[s.name] = a.values_[s.name];
    }
  }
  bool only_positional = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (only_positional || !absl::StartsWith(arg, "--") || arg == "-") {
      a.positional_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positional = true;
      continue;
    }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const FlagSpec* spec = Find(specs, name);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag ", QuoteUserInput("--" + name), " (see --help)"));
    }
    if (!has_value) {
      if (spec->boolean) {
        value = "true";
      } else if (i + 1 < argv.size()) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", name, ": expected a value"));
      }
    }
    a.values_[name] = value;
  }
  return a;
}

std::string Args::Get(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? "" : it->second;
}

absl::StatusOr<std::string> Args::Required(const std::string& name) const {
  std::string v = Get(name);
  if (v.empty()) return absl::InvalidArgumentError(absl::StrCat("--", name, ": required"));
  return v;
}

absl::StatusOr<int64_t> Args::GetInt(const std::string& name) const {
  return Number<int64_t>(name, Get(name), Integer<int64_t>, "an integer");
}

absl::StatusOr<int32_t> Args::GetInt32(const std::string& name) const {
  return Number<int32_t>(name, Get(name), Integer<int32_t>,
                         absl::StrCat("an integer in [", INT32_MIN, ", ", INT32_MAX, "]"));
}

absl::StatusOr<uint64_t> Args::GetUint64(const std::string& name) const {
  return Number<uint64_t>(name, Get(name), Integer<uint64_t>,
                          absl::StrCat("an integer in [0, ", UINT64_MAX, "]"));
}

absl::StatusOr<double> Args::GetDouble(const std::string& name) const {
  return Number<double>(name, Get(name), Real, "a number");
}

absl::StatusOr<bool> Args::GetBool(const std::string& name) const {
  const std::string v = absl::AsciiStrToLower(Get(name));
  if (v.empty() || v == "false" || v == "0" || v == "no") return false;
  if (v == "true" || v == "1" || v == "yes") return true;
  return absl::InvalidArgumentError(
      absl::StrCat("--", name, ": expected true or false, got ", QuoteUserInput(v)));
}

absl::StatusOr<absl::Duration> Args::GetDuration(const std::string& name) const {
  const std::string v = Get(name);
  absl::Duration d;
  if (!absl::ParseDuration(v, &d) || d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, ": expected a positive duration such as 10s or 500ms, got ",
        QuoteUserInput(v)));
  }
  return d;
}

std::vector<std::string> Args::GetList(const std::string& name) const {
  return absl::StrSplit(Get(name), ',', absl::SkipEmpty());
}

std::string FlagsHelp(const std::vector<FlagSpec>& specs) {
  std::string out;
  for (const FlagSpec& s : specs) {
    const std::string lhs =
        s.boolean ? absl::StrCat("--", s.name)
                  : absl::StrCat("--", s.name, "=", s.default_value.empty() ? "..." : s.default_value);
    absl::StrAppendFormat(&out, "  %-28s %s\n", lhs, s.help);
  }
  return out;
}

}  // namespace recctl
}  // namespace recsys
