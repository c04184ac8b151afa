// The flags every service binary shares, defined once, and the
// ServerOptions they make (common/server.h):
//   --address        gRPC listen address (port 0: any free port)
//   --unix_socket    also listen on this Unix domain socket ("": TCP only)
//   --metrics_host   where /metrics and /healthz listen (0.0.0.0 in a pod)
//   --metrics_port   their port (0: any free port, -1: off)
//   --port_file      where the chosen ports are written once listening
//   --grace_period   how long in-flight calls may finish after SIGTERM
// A binary links //common:server_flags and calls ServerOptionsFromFlags()
// after parsing the command line; its own flags stay in its main.cc.
#ifndef RECSYS_COMMON_SERVER_FLAGS_H_
#define RECSYS_COMMON_SERVER_FLAGS_H_

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/time/time.h"
#include "common/server.h"

ABSL_DECLARE_FLAG(std::string, address);
ABSL_DECLARE_FLAG(std::string, unix_socket);
ABSL_DECLARE_FLAG(std::string, metrics_host);
ABSL_DECLARE_FLAG(int, metrics_port);
ABSL_DECLARE_FLAG(std::string, port_file);
ABSL_DECLARE_FLAG(absl::Duration, grace_period);

namespace recsys {

// The options the shared flags set; `health_service_names` as given.
ServerOptions ServerOptionsFromFlags(std::vector<std::string> health_service_names = {});

}  // namespace recsys

#endif  // RECSYS_COMMON_SERVER_FLAGS_H_
