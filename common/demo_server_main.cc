// demo_server: the service bootstrap alone (health, reflection, /metrics),
// with one counter that its own health checks do not touch. Used to check
// the plumbing end to end (tests/demo_server_test.sh).
#include <string>

#include "absl/flags/flag.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/server.h"
#include "common/server_flags.h"


int main(int argc, char** argv) {
  recsys::BlockTerminationSignals();
  recsys::ParseCommandLineWithHelp(argc, argv, "The service bootstrap alone (health, reflection, /metrics).");

  recsys::ServerOptions options = recsys::ServerOptionsFromFlags();
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
