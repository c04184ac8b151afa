// A small HTTP server for Prometheus: GET /metrics renders a registry in the
// text exposition format 0.0.4; GET /healthz answers 200 "ok" while the
// readiness callback says so, 503 otherwise.
//
// Probes must answer while the port is abused: Kubernetes restarts a pod
// whose liveness probe times out. So one thread multiplexes every
// connection with poll(2) and never blocks on a client: a request must
// arrive whole within `request_timeout` (a client trickling one byte per
// second is closed, not waited for), at most `max_connections` are open at
// once (beyond that the oldest unfinished connection is dropped to admit
// the new one), requests are bounded (`max_request_bytes`), and a
// response not taken within `request_timeout` is abandoned. One request
// per connection (Connection: close).
//
// Thread-safety: Create/Stop from one thread; handlers run on the server's
// own thread. The registry must outlive the server.
#ifndef RECSYS_COMMON_METRICS_HTTP_H_
#define RECSYS_COMMON_METRICS_HTTP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace recsys {

class MetricsRegistry;

class MetricsHttpServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 0;  // 0 picks a free port
    MetricsRegistry* registry = nullptr;  // nullptr: MetricsRegistry::Global()
    std::function<bool()> ready;          // nullptr: always ready
    // Time from accept to the last byte of the response.
    absl::Duration request_timeout = absl::Seconds(2);
    int max_connections = 64;      // open at once
    int max_request_bytes = 8192;  // request line + headers
  };

  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Create(
      Options options);
  ~MetricsHttpServer();  // Stops.

  int port() const { return port_; }
  void Stop();

 private:
  MetricsHttpServer() = default;
  void Loop();

  Options options_;
  MetricsRegistry* registry_ = nullptr;
  int listen_fd_ = -1;
  int wake_fd_[2] = {-1, -1};  // Stop() writes to [1]
  std::thread thread_;
  int port_ = 0;
};

}  // namespace recsys

#endif  // RECSYS_COMMON_METRICS_HTTP_H_
