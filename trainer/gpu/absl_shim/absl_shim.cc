// The out-of-line parts of the Abseil shim (see absl/README).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace absl {

std::string StatusCodeToString(StatusCode code) {
  static const char* const kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int c = static_cast<int>(code);
  return c >= 0 && c <= 16 ? kNames[c] : "UNKNOWN";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return StatusCodeToString(code_) + ": " + message_;
}

namespace shim_internal {

void AppendFormatted(std::string* out, std::string_view f, const std::vector<FormatArg>& args) {
  size_t next = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') {
      out->push_back(f[i]);
      continue;
    }
    if (i + 1 < f.size() && f[i + 1] == '%') {
      out->push_back('%');
      ++i;
      continue;
    }
    // %[flags][width][.precision]conv (length modifiers are not needed).
    size_t j = i + 1;
    while (j < f.size() && std::strchr("-+ #0", f[j]) != nullptr) ++j;
    while (j < f.size() && (std::isdigit(static_cast<unsigned char>(f[j])) || f[j] == '.')) ++j;
    if (j >= f.size() || next >= args.size()) {
      out->append(f.substr(i));  // malformed or missing argument: leave it visible
      return;
    }
    const char conv = f[j];
    const std::string spec(f.substr(i, j - i));
    const FormatArg& a = args[next++];
    char buf[512];
    std::string piece;
    if (conv == 's') {
      if (a.kind == FormatArg::kString) {
        piece = std::string(a.s);
        // Width / precision for strings.
        std::snprintf(buf, sizeof(buf), (spec + "s").c_str(), piece.c_str());
        piece = buf;
      } else if (a.kind == FormatArg::kDouble) {
        std::snprintf(buf, sizeof(buf), "%g", a.d);
        piece = buf;
      } else if (a.kind == FormatArg::kSigned) {
        piece = std::to_string(a.i);
      } else if (a.kind == FormatArg::kUnsigned) {
        piece = std::to_string(a.u);
      }
    } else if (conv == 'c') {
      piece = std::string(1, static_cast<char>(a.kind == FormatArg::kSigned ? a.i : a.u));
    } else if (std::strchr("diuxXo", conv) != nullptr) {
      if (a.kind == FormatArg::kDouble) {
        std::snprintf(buf, sizeof(buf), (spec + ".0f").c_str(), a.d);
      } else if (conv == 'd' || conv == 'i') {
        const long long v = a.kind == FormatArg::kSigned ? a.i : static_cast<long long>(a.u);
        std::snprintf(buf, sizeof(buf), (spec + "lld").c_str(), v);
      } else {
        const unsigned long long v =
            a.kind == FormatArg::kUnsigned ? a.u : static_cast<unsigned long long>(a.i);
        std::snprintf(buf, sizeof(buf), (spec + "ll" + conv).c_str(), v);
      }
      piece = buf;
    } else if (std::strchr("feEgGaA", conv) != nullptr) {
      const double v = a.kind == FormatArg::kDouble   ? a.d
                       : a.kind == FormatArg::kSigned ? static_cast<double>(a.i)
                                                      : static_cast<double>(a.u);
      std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), v);
      piece = buf;
    } else if (conv == 'p') {
      std::snprintf(buf, sizeof(buf), "%p", a.p);
      piece = buf;
    } else {
      piece = std::string(f.substr(i, j - i + 1));
    }
    out->append(piece);
    i = j;
  }
}

}  // namespace shim_internal

Time Now() {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  return Time::FromUnixNanos(ns.count());
}

void SleepFor(Duration d) { std::this_thread::sleep_for(std::chrono::nanoseconds(d.nanos())); }

std::string FormatTime(std::string_view format, Time t, TimeZone) {
  const int64_t ns = t.unix_nanos();
  int64_t secs = ns / 1000000000;
  int64_t frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  const std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm;
  gmtime_r(&tt, &tm);
  // Abseil's extensions: %E<n>S / %E*S (seconds with n / all fraction
  // digits), %Ez (+00:00). Rewritten before strftime.
  std::string f;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] == '%' && i + 2 < format.size() && format[i + 1] == 'E') {
      const char c = format[i + 2];
      if (c == 'z') {
        f += "+00:00";
        i += 2;
        continue;
      }
      if ((std::isdigit(static_cast<unsigned char>(c)) || c == '*') && i + 3 < format.size() &&
          format[i + 3] == 'S') {
        char sec[8];
        std::snprintf(sec, sizeof(sec), "%02d", tm.tm_sec);
        f += sec;
        int digits = c == '*' ? 9 : c - '0';
        if (digits > 0) {
          char fr[16];
          std::snprintf(fr, sizeof(fr), "%09lld", static_cast<long long>(frac));
          std::string s(fr, static_cast<size_t>(digits));
          if (c == '*') {
            while (!s.empty() && s.back() == '0') s.pop_back();
          }
          if (!s.empty()) f += "." + s;
        }
        i += 3;
        continue;
      }
    }
    f.push_back(format[i]);
    if (format[i] == '%' && i + 1 < format.size()) f.push_back(format[++i]);
  }
  char buf[256];
  const size_t n = std::strftime(buf, sizeof(buf), f.c_str(), &tm);
  return std::string(buf, n);
}

namespace flags_internal {
namespace {
std::vector<FlagBase*>& Registry() {
  static std::vector<FlagBase*> flags;
  return flags;
}
std::string& Usage() {
  static std::string usage;
  return usage;
}
FlagsUsageConfig& Config() {
  static FlagsUsageConfig config;
  return config;
}
FlagBase* Find(std::string_view name) {
  for (FlagBase* f : Registry()) {
    if (name == f->name()) return f;
  }
  return nullptr;
}
[[noreturn]] void PrintHelpAndExit(const char* argv0) {
  std::cout << argv0 << ": " << Usage() << "\n\n  Flags:\n";
  for (FlagBase* f : Registry()) {
    if (Config().contains_help_flags && !Config().contains_help_flags(f->file())) continue;
    std::cout << "    --" << f->name() << " (" << f->help() << "); default: \"" << f->Current()
              << "\";\n";
  }
  std::exit(1);
}
}  // namespace

FlagBase::FlagBase(const char* name, const char* help, const char* file, bool is_bool)
    : name_(name), help_(help), file_(file), is_bool_(is_bool) {
  Registry().push_back(this);
}

}  // namespace flags_internal

void SetProgramUsageMessage(std::string_view usage) {
  flags_internal::Usage() = std::string(usage);
}

void SetFlagsUsageConfig(FlagsUsageConfig config) {
  flags_internal::Config() = std::move(config);
}

std::vector<char*> ParseCommandLine(int argc, char* argv[]) {
  using flags_internal::FlagBase;
  std::vector<char*> positional = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      for (int k = i + 1; k < argc; ++k) positional.push_back(argv[k]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      positional.push_back(argv[i]);
      continue;
    }
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    const size_t eq = arg.find('=');
    std::string_view name = arg.substr(0, eq);
    if (name == "help" || name == "helpfull" || name == "helpshort") {
      flags_internal::PrintHelpAndExit(argv[0]);
    }
    FlagBase* flag = flags_internal::Find(name);
    std::string value;
    if (flag == nullptr && eq == std::string_view::npos && name.substr(0, 2) == "no") {
      flag = flags_internal::Find(name.substr(2));
      if (flag != nullptr && flag->is_bool()) {
        value = "false";
      } else {
        flag = nullptr;
      }
    } else if (flag != nullptr) {
      if (eq != std::string_view::npos) {
        value = std::string(arg.substr(eq + 1));
      } else if (flag->is_bool()) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        std::cerr << "ERROR: Missing the value for the flag '" << name << "'\n";
        std::exit(1);
      }
    }
    if (flag == nullptr) {
      std::cerr << "ERROR: Unknown command line flag '" << name << "'\n";
      std::exit(1);
    }
    if (!flag->Parse(value)) {
      std::cerr << "ERROR: Illegal value '" << value << "' specified for flag '" << name
                << "'\n";
      std::exit(1);
    }
  }
  return positional;
}

}  // namespace absl
