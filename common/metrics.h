// Prometheus metrics: counter, gauge and histogram families with labels,
// rendered in the text exposition format 0.0.4.
//
//   static auto* requests = MetricsRegistry::Global().AddCounter(
//       "recsys_requests_total", "Requests by method.", {"method", "code"});
//   requests->WithLabels({"Search", "OK"})->Increment();
//
// Thread-safety: everything is thread-safe. Increments, Set and Observe are
// lock-free atomics; WithLabels takes the family's reader lock (a writer lock
// only the first time a label set is seen), so hot paths may cache the
// returned pointer. Families and children live as long as the registry.
#ifndef RECSYS_COMMON_METRICS_H_
#define RECSYS_COMMON_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace recsys {

class Counter {
 public:
  // REQUIRES: v >= 0 (negative increments are ignored).
  void Increment(double v = 1.0);
  // Raises the value to `v` if it is larger: for mirroring a monotonic
  // counter kept elsewhere (e.g. CPU seconds from /proc).
  void IncrementTo(double v);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  // `bounds`: strictly increasing upper bounds; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  void ObserveDuration(absl::Duration d) { Observe(absl::ToDoubleSeconds(d)); }

  const std::vector<double>& bounds() const { return bounds_; }
  // Non-cumulative count of bucket i (i == bounds().size() is +Inf).
  uint64_t bucket_count(size_t i) const {
    return counts_[i].load(std::memory_order_relaxed);
  }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

enum class MetricType { kCounter, kGauge, kHistogram };

// A named metric with a fixed list of label names; one child per distinct
// list of label values.
template <typename T>
class MetricFamily {
 public:
  // REQUIRES: label_values.size() == label_names().size(). A mismatch is a
  // programming error: it returns the child for the values padded/truncated.
  T* WithLabels(const std::vector<std::string>& label_values)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Stops exporting the child for `label_values` (e.g. a dropped
  // collection's series). The child stays allocated, so a pointer a caller
  // cached stays valid (its updates are just no longer exported); a later
  // WithLabels with the same values starts a fresh child.
  void Remove(const std::vector<std::string>& label_values)
      ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Copies of (label values, child) pairs, sorted by labels.
  std::vector<std::pair<std::vector<std::string>, const T*>> Children() const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class MetricsRegistry;
  MetricFamily(std::string name, std::string help,
               std::vector<std::string> label_names,
               std::vector<double> buckets);

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> buckets_;  // histograms only
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<T>> removed_ ABSL_GUARDED_BY(mu_);
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // The process-wide registry every service exports on /metrics. It includes
  // process_* metrics (resident memory, CPU seconds, start time, threads).
  static MetricsRegistry& Global();

  // Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
  // [a-zA-Z_][a-zA-Z0-9_]*. Adding an existing name with the same type
  // returns the existing family (so static registration in several files is
  // safe); a different type or bad name is a programming error (LOG(FATAL)).
  MetricFamily<Counter>* AddCounter(const std::string& name,
                                    const std::string& help,
                                    std::vector<std::string> label_names = {})
      ABSL_LOCKS_EXCLUDED(mu_);
  MetricFamily<Gauge>* AddGauge(const std::string& name,
                                const std::string& help,
                                std::vector<std::string> label_names = {})
      ABSL_LOCKS_EXCLUDED(mu_);
  MetricFamily<Histogram>* AddHistogram(
      const std::string& name, const std::string& help,
      std::vector<std::string> label_names, std::vector<double> buckets)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Runs before each Render(); lets a component refresh gauges that are
  // cheaper to compute on scrape than to maintain (e.g. memory per index).
  void AddCollectHook(std::function<void()> hook) ABSL_LOCKS_EXCLUDED(mu_);

  // The text exposition format 0.0.4, families sorted by name.
  std::string Render() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    MetricType type;
    std::unique_ptr<MetricFamily<Counter>> counter;
    std::unique_ptr<MetricFamily<Gauge>> gauge;
    std::unique_ptr<MetricFamily<Histogram>> histogram;
  };
  Entry* FindOrAddLocked(const std::string& name, MetricType type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Entry> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> hooks_ ABSL_GUARDED_BY(mu_);
};

// Latency buckets in seconds, 50 us .. 10 s, roughly x2.5 apart.
std::vector<double> LatencyBuckets();
// Powers of two 1 .. 1024, for batch sizes.
std::vector<double> SizeBuckets();

}  // namespace recsys

#endif  // RECSYS_COMMON_METRICS_H_
