#include "common/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"

namespace recsys {
namespace {

void AtomicAdd(std::atomic<double>& target, double v) {
  double cur = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

bool ValidName(const std::string& name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    c == '_' || (allow_colon && c == ':') ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return name.rfind("__", 0) != 0 || allow_colon;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"} with an optional extra label (for histogram "le").
std::string LabelString(const std::vector<std::string>& names,
                        const std::vector<std::string>& values,
                        const std::string& extra_name = "",
                        const std::string& extra_value = "") {
  if (names.empty() && extra_name.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ",";
    absl::StrAppend(&out, names[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out += ",";
    absl::StrAppend(&out, extra_name, "=\"", extra_value, "\"");
  }
  out += "}";
  return out;
}

template <typename T>
std::unique_ptr<T> MakeChild(const std::vector<double>&) {
  return std::make_unique<T>();
}
template <>
std::unique_ptr<Histogram> MakeChild<Histogram>(const std::vector<double>& b) {
  return std::make_unique<Histogram>(b);
}

}  // namespace

void Counter::Increment(double v) {
  if (!(v >= 0)) return;
  AtomicAdd(value_, v);
}

void Counter::IncrementTo(double v) {
  double cur = value_.load(std::memory_order_relaxed);
  while (v > cur &&
         !value_.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

void Gauge::Add(double v) { AtomicAdd(value_, v); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double v) {
  // Bucket i counts bounds_[i-1] < v <= bounds_[i].
  const size_t i = static_cast<size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
}

template <typename T>
MetricFamily<T>::MetricFamily(std::string name, std::string help,
                              std::vector<std::string> label_names,
                              std::vector<double> buckets)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      buckets_(std::move(buckets)) {}

template <typename T>
T* MetricFamily<T>::WithLabels(const std::vector<std::string>& label_values) {
  std::vector<std::string> key = label_values;
  key.resize(label_names_.size());
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = children_.find(key);
    if (it != children_.end()) return it->second.get();
  }
  absl::MutexLock lock(&mu_);
  auto& slot = children_[key];
  if (slot == nullptr) slot = MakeChild<T>(buckets_);
  return slot.get();
}

template <typename T>
void MetricFamily<T>::Remove(const std::vector<std::string>& label_values) {
  std::vector<std::string> key = label_values;
  key.resize(label_names_.size());
  absl::MutexLock lock(&mu_);
  auto it = children_.find(key);
  if (it == children_.end()) return;
  removed_.push_back(std::move(it->second));
  children_.erase(it);
}

template <typename T>
std::vector<std::pair<std::vector<std::string>, const T*>>
MetricFamily<T>::Children() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::pair<std::vector<std::string>, const T*>> out;
  out.reserve(children_.size());
  for (const auto& [labels, child] : children_) {
    out.emplace_back(labels, child.get());
  }
  return out;
}

template class MetricFamily<Counter>;
template class MetricFamily<Gauge>;
template class MetricFamily<Histogram>;

MetricsRegistry::MetricsRegistry() = default;

namespace {

// process_* metrics as the Prometheus client libraries export them.
void AddProcessMetrics(MetricsRegistry* registry) {
  auto* cpu = registry
                  ->AddCounter("process_cpu_seconds_total",
                               "Total user and system CPU time spent in seconds.")
                  ->WithLabels({});
  auto* rss = registry
                  ->AddGauge("process_resident_memory_bytes",
                             "Resident memory size in bytes.")
                  ->WithLabels({});
  auto* vms = registry
                  ->AddGauge("process_virtual_memory_bytes",
                             "Virtual memory size in bytes.")
                  ->WithLabels({});
  auto* fds = registry
                  ->AddGauge("process_open_fds", "Number of open file descriptors.")
                  ->WithLabels({});
  auto* threads = registry
                      ->AddGauge("process_threads", "Number of OS threads.")
                      ->WithLabels({});
  registry
      ->AddGauge("process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds.")
      ->WithLabels({})
      ->Set(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  registry->AddCollectHook([=] {
    std::ifstream stat("/proc/self/stat");
    std::string line;
    if (std::getline(stat, line)) {
      // Fields after the parenthesised command name, which may hold spaces.
      const size_t close = line.rfind(')');
      if (close != std::string::npos) {
        std::vector<std::string> f =
            absl::StrSplit(line.substr(close + 2), ' ', absl::SkipEmpty());
        // f[0] is field 3 (state); utime=14, stime=15, threads=20,
        // vsize=23, rss=24 in proc(5) numbering.
        if (f.size() > 21) {
          cpu->IncrementTo((std::stod(f[11]) + std::stod(f[12])) / ticks);
          threads->Set(std::stod(f[17]));
          vms->Set(std::stod(f[20]));
          rss->Set(std::stod(f[21]) * page);
        }
      }
    }
    absl::StatusOr<std::vector<std::string>> entries =
        ListDirectory("/proc/self/fd");
    if (entries.ok()) fds->Set(static_cast<double>(entries->size()));
  });
}

}  // namespace

MetricsRegistry& MetricsRegistry::Global() {
  static MetricsRegistry* registry = [] {
    auto* r = new MetricsRegistry();
    AddProcessMetrics(r);
    return r;
  }();
  return *registry;
}

MetricsRegistry::Entry* MetricsRegistry::FindOrAddLocked(const std::string& name,
                                                         MetricType type) {
  if (!ValidName(name, /*allow_colon=*/true)) {
    LOG(FATAL) << "invalid metric name \"" << name << "\"";
  }
  auto it = families_.find(name);
  if (it != families_.end()) {
    if (it->second.type != type) {
      LOG(FATAL) << "metric \"" << name << "\" registered with two types";
    }
    return &it->second;
  }
  Entry& e = families_[name];
  e.type = type;
  return &e;
}

namespace {

void CheckLabelNames(const std::string& metric,
                     const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    if (!ValidName(n, /*allow_colon=*/false) || n == "le") {
      LOG(FATAL) << "invalid label name \"" << n << "\" for metric " << metric;
    }
  }
}

}  // namespace

MetricFamily<Counter>* MetricsRegistry::AddCounter(
    const std::string& name, const std::string& help,
    std::vector<std::string> label_names) {
  CheckLabelNames(name, label_names);
  absl::MutexLock lock(&mu_);
  Entry* e = FindOrAddLocked(name, MetricType::kCounter);
  if (e->counter == nullptr) {
    e->counter.reset(
        new MetricFamily<Counter>(name, help, std::move(label_names), {}));
  }
  return e->counter.get();
}

MetricFamily<Gauge>* MetricsRegistry::AddGauge(
    const std::string& name, const std::string& help,
    std::vector<std::string> label_names) {
  CheckLabelNames(name, label_names);
  absl::MutexLock lock(&mu_);
  Entry* e = FindOrAddLocked(name, MetricType::kGauge);
  if (e->gauge == nullptr) {
    e->gauge.reset(new MetricFamily<Gauge>(name, help, std::move(label_names), {}));
  }
  return e->gauge.get();
}

MetricFamily<Histogram>* MetricsRegistry::AddHistogram(
    const std::string& name, const std::string& help,
    std::vector<std::string> label_names, std::vector<double> buckets) {
  CheckLabelNames(name, label_names);
  std::sort(buckets.begin(), buckets.end());
  buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
  while (!buckets.empty() && std::isinf(buckets.back())) buckets.pop_back();
  absl::MutexLock lock(&mu_);
  Entry* e = FindOrAddLocked(name, MetricType::kHistogram);
  if (e->histogram == nullptr) {
    e->histogram.reset(new MetricFamily<Histogram>(
        name, help, std::move(label_names), std::move(buckets)));
  }
  return e->histogram.get();
}

void MetricsRegistry::AddCollectHook(std::function<void()> hook) {
  absl::MutexLock lock(&mu_);
  hooks_.push_back(std::move(hook));
}

std::string MetricsRegistry::Render() const {
  std::vector<std::function<void()>> hooks;
  {
    absl::MutexLock lock(&mu_);
    hooks = hooks_;
  }
  for (const auto& hook : hooks) hook();

  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, e] : families_) {
    switch (e.type) {
      case MetricType::kCounter: {
        const auto& f = *e.counter;
        absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(f.help()),
                        "\n# TYPE ", name, " counter\n");
        for (const auto& [labels, c] : f.Children()) {
          absl::StrAppend(&out, name, LabelString(f.label_names(), labels), " ",
                          FormatValue(c->value()), "\n");
        }
        break;
      }
      case MetricType::kGauge: {
        const auto& f = *e.gauge;
        absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(f.help()),
                        "\n# TYPE ", name, " gauge\n");
        for (const auto& [labels, g] : f.Children()) {
          absl::StrAppend(&out, name, LabelString(f.label_names(), labels), " ",
                          FormatValue(g->value()), "\n");
        }
        break;
      }
      case MetricType::kHistogram: {
        const auto& f = *e.histogram;
        absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(f.help()),
                        "\n# TYPE ", name, " histogram\n");
        for (const auto& [labels, h] : f.Children()) {
          // Read the buckets first and derive the count from them, so that a
          // concurrent Observe cannot make _count disagree with +Inf.
          uint64_t cumulative = 0;
          for (size_t i = 0; i <= h->bounds().size(); ++i) {
            cumulative += h->bucket_count(i);
            const std::string le =
                i < h->bounds().size() ? FormatValue(h->bounds()[i]) : "+Inf";
            absl::StrAppend(&out, name, "_bucket",
                            LabelString(f.label_names(), labels, "le", le), " ",
                            cumulative, "\n");
          }
          const std::string ls = LabelString(f.label_names(), labels);
          absl::StrAppend(&out, name, "_sum", ls, " ", FormatValue(h->sum()),
                          "\n", name, "_count", ls, " ", cumulative, "\n");
        }
        break;
      }
    }
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0, 10.0};
}

std::vector<double> SizeBuckets() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
}

}  // namespace recsys
