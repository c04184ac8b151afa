#include "trainer/bench/core_balance.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace recsys {
namespace {

using Clock = std::chrono::steady_clock;

// One unit of work: a few microseconds of independent multiply-adds, the
// same on every call (the result is kept, so it is not optimised away).
float WorkUnit(float* acc) {
  for (int r = 0; r < 256; ++r) {
    for (int i = 0; i < 64; ++i) acc[i] = acc[i] * 0.9999999f + 1e-7f;
  }
  return acc[0];
}

struct Worker {
  std::atomic<int64_t> units{0};
  std::thread thread;
};

void Spin(int cpu, const std::atomic<bool>* stop, Worker* w) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // best effort
  float acc[64];
  for (int i = 0; i < 64; ++i) acc[i] = 1.0f + 1e-3f * i;
  float keep = 0;
  while (!stop->load(std::memory_order_relaxed)) {
    keep += WorkUnit(acc);
    w->units.fetch_add(1, std::memory_order_relaxed);
  }
  volatile float sink = keep;
  (void)sink;
}

// REQUIRES: `sorted` ascending and not empty.
double Quantile(const std::vector<double>& sorted, double q) {
  return sorted[static_cast<size_t>(q * static_cast<double>(sorted.size() - 1))];
}

}  // namespace

absl::Status CheckCoreBalanceArgs(double seconds, double window_ms) {
  if (!(seconds > 0) || !(window_ms > 0) || window_ms / 1000.0 > seconds / 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "core balance: seconds and window_ms must be > 0 with at least 3 windows in a third "
        "of the time; got seconds ", seconds, ", window_ms ", window_ms));
  }
  return absl::OkStatus();
}

absl::StatusOr<CoreBalance> MeasureCoreBalance(double seconds, double window_ms) {
  if (absl::Status s = CheckCoreBalanceArgs(seconds, window_ms); !s.ok()) return s;
  CoreBalance out;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
    for (int c = 0; c < CPU_SETSIZE && out.cpus.size() < 2; ++c) {
      if (CPU_ISSET(c, &allowed)) out.cpus.push_back(c);
    }
  }
  if (out.cpus.size() < 2) {
    return absl::FailedPreconditionError(
        absl::StrCat("core balance: this process may use ", out.cpus.size(), " CPU(s), needs 2"));
  }
  out.window_ms = window_ms;
  const auto window = std::chrono::duration<double, std::milli>(window_ms);

  // One alone.
  std::atomic<bool> stop{false};
  Worker alone;
  alone.thread = std::thread(Spin, out.cpus[0], &stop, &alone);
  std::this_thread::sleep_for(window);  // past start-up
  const int64_t a0 = alone.units.load();
  const Clock::time_point t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds / 3));
  const int64_t a1 = alone.units.load();
  const double alone_secs = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  alone.thread.join();
  if (a1 <= a0) {
    return absl::UnavailableError("core balance: the probe's thread got no CPU time alone");
  }
  out.alone_units_per_s = static_cast<double>(a1 - a0) / alone_secs;

  // Both at once, sampled per window.
  stop = false;
  Worker both[2];
  for (int k = 0; k < 2; ++k) both[k].thread = std::thread(Spin, out.cpus[k], &stop, &both[k]);
  std::this_thread::sleep_for(window);
  int64_t prev[2] = {both[0].units.load(), both[1].units.load()};
  const int64_t first[2] = {prev[0], prev[1]};
  std::vector<double> ratios;
  double min_sum = 0;
  const Clock::time_point b0 = Clock::now();
  Clock::time_point last = b0;
  while (std::chrono::duration<double>(last - b0).count() < seconds) {
    std::this_thread::sleep_for(window);
    const Clock::time_point now = Clock::now();
    const int64_t cur[2] = {both[0].units.load(), both[1].units.load()};
    const int64_t d0 = cur[0] - prev[0], d1 = cur[1] - prev[1];
    // A window where one thread did nothing counts (a split would have
    // stalled in it), but has no ratio.
    min_sum += 2.0 * static_cast<double>(std::min(d0, d1));
    if (d0 > 0 && d1 > 0) {
      ratios.push_back(static_cast<double>(std::max(d0, d1)) /
                       static_cast<double>(std::min(d0, d1)));
    }
    prev[0] = cur[0];
    prev[1] = cur[1];
    last = now;
  }
  stop = true;
  for (Worker& w : both) w.thread.join();
  const double both_secs = std::chrono::duration<double>(last - b0).count();
  for (int k = 0; k < 2; ++k) {
    out.both_units_per_s[k] = static_cast<double>(prev[k] - first[k]) / both_secs;
  }
  out.parallel_ceiling =
      (out.both_units_per_s[0] + out.both_units_per_s[1]) / out.alone_units_per_s;
  out.windows = static_cast<int>(ratios.size());
  out.barrier_split_ceiling = min_sum / (out.alone_units_per_s * both_secs);
  if (out.windows > 0) {
    std::sort(ratios.begin(), ratios.end());
    out.faster_over_slower_median = Quantile(ratios, 0.5);
    out.faster_over_slower_p90 = Quantile(ratios, 0.9);
    out.faster_over_slower_max = ratios.back();
    out.windows_over_10_percent = static_cast<int>(
        ratios.end() - std::upper_bound(ratios.begin(), ratios.end(), 1.10));
  }
  return out;
}

}  // namespace recsys
