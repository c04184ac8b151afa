// The bootstrap every service binary uses: a gRPC server (callback API) on
// `address` with the grpc.health.v1 health service, server reflection,
// bounded message sizes and keepalive, plus Prometheus /metrics over HTTP,
// and graceful shutdown on SIGTERM/SIGINT.
//
//   int main(int argc, char** argv) {
//     recsys::BlockTerminationSignals();     // before any thread starts
//     ... parse flags, build the service ...
//     ASSIGN_OR_DIE(auto server, ServiceServer::Create(options, {&service}));
//     ... load state ...; server->SetServing(true);
//     server->Wait();                        // returns after a drain
//   }
//
// Health: every registered service name and "" (the whole server) report
// NOT_SERVING until SetServing(true).
// Shutdown: on SIGTERM/SIGINT or Shutdown(), health flips to NOT_SERVING,
// the server stops accepting calls, in-flight calls get up to
// `grace_period` to finish, then are cancelled; Wait() returns.
// Thread-safety: all methods are thread-safe.
#ifndef RECSYS_COMMON_SERVER_H_
#define RECSYS_COMMON_SERVER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace recsys {

class HealthService;
class MetricsHttpServer;
class MetricsRegistry;

struct ServerOptions {
  // host:port for gRPC; port 0 picks a free port (see grpc_port()).
  std::string address = "127.0.0.1:0";
  // If set, the same server also listens on this Unix domain socket (an
  // absolute path of at most kMaxUnixSocketPathBytes bytes; clients connect
  // to "unix:" + path), for a caller on the same host such as the
  // recommendation server beside its retrieval sidecar. A stale socket file
  // at the path is replaced. "" (the default): TCP only.
  std::string unix_socket;
  // HTTP /metrics and /healthz: -1 disables, 0 picks a free port.
  int metrics_port = 0;
  std::string metrics_host = "127.0.0.1";
  // Largest request message accepted, in bytes.
  int max_receive_message_bytes = 64 << 20;
  // Largest reply message sent, in bytes.
  int max_send_message_bytes = 64 << 20;
  // How long in-flight calls may run after shutdown begins.
  absl::Duration grace_period = absl::Seconds(10);
  // If set, "grpc_port=N\nmetrics_port=M\n" is written here (atomically)
  // once both are listening, for scripts that start the binary.
  std::string port_file;
  // Service names (e.g. "recsys.v1.Retrieval") the health service knows
  // from the start, NOT_SERVING until SetServing. "" is always registered.
  std::vector<std::string> health_service_names;
  // Metrics exported on /metrics; nullptr means MetricsRegistry::Global().
  MetricsRegistry* registry = nullptr;
};

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts
// later, so that only ServiceServer::Wait() receives them. Call first in main.
void BlockTerminationSignals();

// sockaddr_un's sun_path holds 108 bytes with the terminating NUL.
inline constexpr size_t kMaxUnixSocketPathBytes = 107;

// INVALID_ARGUMENT naming `unix_socket` unless `path` is "" or an absolute
// path of at most kMaxUnixSocketPathBytes bytes.
absl::Status ValidateUnixSocketPath(const std::string& path);

class ServiceServer {
 public:
  // Starts listening. `services` are not owned and must outlive the server.
  static absl::StatusOr<std::unique_ptr<ServiceServer>> Create(
      const ServerOptions& options, const std::vector<grpc::Service*>& services);
  ~ServiceServer();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const;
  std::string grpc_target() const;  // "127.0.0.1:port"
  // "unix:" + options.unix_socket, or "" when it is not set.
  std::string unix_target() const;

  // Health of the whole server and of each registered service.
  void SetServing(bool serving);
  // Health of one service by full name ("recsys.v1.Retrieval").
  void SetServing(const std::string& service, bool serving);

  // Starts a graceful shutdown (idempotent); Wait() then returns.
  void Shutdown();
  // Blocks until a termination signal (if BlockTerminationSignals() was
  // called) or Shutdown(); then drains and stops everything.
  void Wait();

 private:
  ServiceServer() = default;
  struct State;
  std::unique_ptr<State> state_;
  int grpc_port_ = 0;
};

}  // namespace recsys

#endif  // RECSYS_COMMON_SERVER_H_
