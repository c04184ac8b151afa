// A small HTTP server for Prometheus: GET /metrics renders a registry in the
// text exposition format 0.0.4; GET /healthz answers 200 "ok" while the
// readiness callback says so, 503 otherwise.
// Thread-safety: Create/Stop from one thread; handlers run on the server's
// own threads. The registry must outlive the server.
#ifndef RECSYS_COMMON_METRICS_HTTP_H_
#define RECSYS_COMMON_METRICS_HTTP_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}

namespace recsys {

class MetricsRegistry;

class MetricsHttpServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 0;  // 0 picks a free port
    MetricsRegistry* registry = nullptr;  // nullptr: MetricsRegistry::Global()
    std::function<bool()> ready;          // nullptr: always ready
  };

  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Create(
      Options options);
  ~MetricsHttpServer();  // Stops.

  int port() const { return port_; }
  void Stop();

 private:
  MetricsHttpServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace recsys

#endif  // RECSYS_COMMON_METRICS_HTTP_H_
