#include "trainer/bench/host_cpu.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace recsys {
namespace {

// The fields of the aggregate line, in the kernel's order (proc(5)).
constexpr const char* kFields[] = {"user", "nice",    "system", "idle",
                                   "iowait", "irq", "softirq", "steal"};
constexpr int kRequired = 7;  // steal came with 2.6.11

}  // namespace

absl::StatusOr<HostCpuTicks> ParseProcStat(const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("cpu ", 0) != 0) continue;
    std::istringstream words(line.substr(4));
    std::vector<uint64_t> v;
    std::string w;
    while (v.size() < 8 && words >> w) {
      errno = 0;
      char* end = nullptr;
      const unsigned long long x = std::strtoull(w.c_str(), &end, 10);
      if (w[0] == '-' || end != w.c_str() + w.size() || errno == ERANGE) {
        return absl::InvalidArgumentError(
            absl::StrCat("/proc/stat: the \"cpu\" line's ", kFields[v.size()],
                         " field must be a whole number; got \"", w.substr(0, 32), "\""));
      }
      v.push_back(x);
    }
    if (v.size() < kRequired) {
      return absl::InvalidArgumentError(
          absl::StrCat("/proc/stat: the \"cpu\" line has ", v.size(), " fields; expected at least ",
                       kRequired, " (user .. softirq)"));
    }
    v.resize(8, 0);
    HostCpuTicks t;
    t.busy = v[0] + v[1] + v[2] + v[5] + v[6];
    t.idle = v[3] + v[4];
    t.steal = v[7];
    return t;
  }
  return absl::InvalidArgumentError("/proc/stat: no aggregate \"cpu \" line");
}

absl::StatusOr<HostCpuTicks> ReadHostCpuTicks() {
  absl::StatusOr<std::string> text = ReadFileToString("/proc/stat");
  if (!text.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot read /proc/stat: ", text.status().message()));
  }
  return ParseProcStat(*text);
}

HostCpuShare ShareBetween(const HostCpuTicks& a, const HostCpuTicks& b) {
  if (b.busy < a.busy || b.idle < a.idle || b.steal < a.steal) return {};
  const double busy = static_cast<double>(b.busy - a.busy);
  const double idle = static_cast<double>(b.idle - a.idle);
  const double steal = static_cast<double>(b.steal - a.steal);
  const double all = busy + idle + steal;
  if (all <= 0) return {};
  return {100.0 * steal / all, 100.0 * idle / all};
}

}  // namespace recsys
