// demo_server: the service bootstrap alone (health, reflection, /metrics),
// with one counter that its own health checks do not touch. Used to check
// the plumbing end to end (tests/demo_server_test.sh).
#include <string>

#include "absl/flags/flag.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/server.h"

ABSL_FLAG(std::string, address, "127.0.0.1:0", "gRPC listen address.");
ABSL_FLAG(int, metrics_port, 0, "HTTP /metrics port (0: any free port).");
ABSL_FLAG(std::string, port_file, "", "Where to write the chosen ports.");

int main(int argc, char** argv) {
  recsys::BlockTerminationSignals();
  recsys::ParseCommandLineWithHelp(argc, argv, "The service bootstrap alone (health, reflection, /metrics).");

  recsys::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.port_file = absl::GetFlag(FLAGS_port_file);
  auto server = recsys::ServiceServer::Create(options, {});
  if (!server.ok()) {
    LOG(ERROR) << server.status();
    return 1;
  }
  recsys::MetricsRegistry::Global()
      .AddCounter("recsys_demo_starts_total", "Times the demo server started.")
      ->WithLabels({})
      ->Increment();
  (*server)->SetServing(true);
  (*server)->Wait();
  return 0;
}
