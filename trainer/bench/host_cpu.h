// The host's CPU time as the guest kernel counts it (/proc/stat), so that a
// benchmark can say how much of its window the hypervisor took away.
//
// Why: on a shared VM a vCPU that is runnable but not running is counted as
// "steal". On the 2-vCPU Xeon the bench ran on on 2026-12-03 the guest was
// otherwise idle, yet while the trainer used both vCPUs 20-39% of the CPU
// time went to steal (under 2% with one busy): 2 threads ran slower than 1
// in some rounds and 1.4x faster in others. A thread ratio measured without
// the steal beside it cannot be told from a slow split.
//
// Thread-safety: the functions keep no state; call them from any thread.
#ifndef RECSYS_TRAINER_BENCH_HOST_CPU_H_
#define RECSYS_TRAINER_BENCH_HOST_CPU_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace recsys {

// Ticks (USER_HZ) summed over all the host's CPUs since boot.
struct HostCpuTicks {
  uint64_t busy = 0;   // user + nice + system + irq + softirq (guest is in user)
  uint64_t idle = 0;   // idle + iowait
  uint64_t steal = 0;  // runnable, but the hypervisor ran something else
};

// The aggregate "cpu " line of a /proc/stat text. InvalidArgument, naming
// the field, when the line is missing or a field is not a whole number;
// kernels older than 2.6.11 have no steal field, which reads as 0.
absl::StatusOr<HostCpuTicks> ParseProcStat(const std::string& text);

// ParseProcStat of this machine's /proc/stat; Unavailable where it cannot
// be read (not Linux).
absl::StatusOr<HostCpuTicks> ReadHostCpuTicks();

// Over [a, b]: steal and idle as percent of all CPU time; -1 for both when
// no tick passed (or b is before a).
struct HostCpuShare {
  double steal_percent = -1;
  double idle_percent = -1;
};
HostCpuShare ShareBetween(const HostCpuTicks& a, const HostCpuTicks& b);

}  // namespace recsys

#endif  // RECSYS_TRAINER_BENCH_HOST_CPU_H_
