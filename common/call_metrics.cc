#include "common/call_metrics.h"

#include <utility>

namespace recsys {

CallMetrics::CallMetrics(const std::string& prefix, const std::string& subject,
                         std::vector<std::string> labels, MetricsRegistry* registry)
    : num_labels_(labels.size()) {
  MetricsRegistry& r = registry != nullptr ? *registry : MetricsRegistry::Global();
  std::vector<std::string> latency_labels = {"method"};
  latency_labels.insert(latency_labels.end(), labels.begin(), labels.end());
  std::vector<std::string> request_labels = latency_labels;
  request_labels.push_back("code");
  requests_ = r.AddCounter(prefix + "_requests_total",
                           subject + " calls by method and status code.",
                           std::move(request_labels));
  latency_ = r.AddHistogram(prefix + "_request_seconds", subject + " call latency.",
                            std::move(latency_labels), LatencyBuckets());
}

CallRecord::CallRecord(const CallMetrics& metrics, std::string method)
    : metrics_(metrics), start_(absl::Now()) {
  labels_.reserve(1 + metrics.num_labels());
  labels_.push_back(std::move(method));
  labels_.resize(1 + metrics.num_labels(), "-");
}

void CallRecord::SetLabel(size_t index, std::string value) {
  if (index + 1 < labels_.size()) labels_[index + 1] = std::move(value);
}

void CallRecord::Finish(const absl::Status& status) {
  if (finished_.exchange(true)) return;
  metrics_.latency()->WithLabels(labels_)->ObserveDuration(absl::Now() - start_);
  std::vector<std::string> with_code = labels_;
  with_code.push_back(absl::StatusCodeToString(status.code()));
  metrics_.requests()->WithLabels(with_code)->Increment();
}

}  // namespace recsys
