// The per-call metrics every gRPC service records, one way:
//   <prefix>_requests_total{method, <labels...>, code}   counter
//   <prefix>_request_seconds{method, <labels...>}         histogram
//
//   static const CallMetrics& M() {
//     static const CallMetrics* m = new CallMetrics("recsys_recommender", "Recommender");
//     return *m;
//   }
//   CallRecord record(M(), "Recommend");
//   ... validate, delegate ...
//   record.Finish(status);   // code and latency, once
//
// Label cardinality: extra labels (e.g. a collection name) must be bounded;
// callers set them only once the value is known to be valid.
// Thread-safety: CallMetrics is thread-safe; a CallRecord belongs to one call
// (Finish may run on another thread than the constructor, once).
#ifndef RECSYS_COMMON_CALL_METRICS_H_
#define RECSYS_COMMON_CALL_METRICS_H_

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/metrics.h"

namespace recsys {

class CallMetrics {
 public:
  // `subject` names the service in the help texts ("Retrieval").
  // `labels`: extra label names, between method and code.
  CallMetrics(const std::string& prefix, const std::string& subject,
              std::vector<std::string> labels = {}, MetricsRegistry* registry = nullptr);

  MetricFamily<Counter>* requests() const { return requests_; }
  MetricFamily<Histogram>* latency() const { return latency_; }
  size_t num_labels() const { return num_labels_; }

 private:
  size_t num_labels_;
  MetricFamily<Counter>* requests_;
  MetricFamily<Histogram>* latency_;
};

class CallRecord {
 public:
  // Starts the clock. Extra labels default to "-".
  CallRecord(const CallMetrics& metrics, std::string method);
  CallRecord(const CallRecord&) = delete;
  CallRecord& operator=(const CallRecord&) = delete;

  // REQUIRES: index < metrics.num_labels().
  void SetLabel(size_t index, std::string value);
  // Records the status code and the latency; only the first call counts.
  void Finish(const absl::Status& status);
  absl::Duration elapsed() const { return absl::Now() - start_; }
  const std::string& method() const { return labels_[0]; }

 private:
  const CallMetrics& metrics_;
  std::vector<std::string> labels_;  // method, extra labels
  const absl::Time start_;
  std::atomic<bool> finished_{false};
};

}  // namespace recsys

#endif  // RECSYS_COMMON_CALL_METRICS_H_
