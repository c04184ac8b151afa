#include "common/server_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, address, "127.0.0.1:0", "gRPC listen address (port 0: any free port).");
ABSL_FLAG(std::string, unix_socket, "",
          "Also listen on this Unix domain socket (absolute path; clients use unix:PATH), "
          "for callers on the same host. Empty: TCP only.");
ABSL_FLAG(std::string, metrics_host, "127.0.0.1",
          "Address /metrics and /healthz listen on (0.0.0.0 to be scraped from outside).");
ABSL_FLAG(int, metrics_port, 0, "HTTP /metrics and /healthz port (0: any free port, -1: off).");
ABSL_FLAG(std::string, port_file, "",
          "Written with grpc_port=N and metrics_port=M once listening.");
ABSL_FLAG(absl::Duration, grace_period, absl::Seconds(10),
          "How long in-flight calls may finish after SIGTERM.");

namespace recsys {

ServerOptions ServerOptionsFromFlags(std::vector<std::string> health_service_names) {
  ServerOptions o;
  o.address = absl::GetFlag(FLAGS_address);
  o.unix_socket = absl::GetFlag(FLAGS_unix_socket);
  o.metrics_host = absl::GetFlag(FLAGS_metrics_host);
  o.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  o.port_file = absl::GetFlag(FLAGS_port_file);
  o.grace_period = absl::GetFlag(FLAGS_grace_period);
  o.health_service_names = std::move(health_service_names);
  return o;
}

}  // namespace recsys
