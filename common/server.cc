#include "common/server.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/file_util.h"
#include "common/health_service.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/metrics_http.h"
#include "common/user_input.h"
#include "common/validation.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"

namespace recsys {
namespace {

std::atomic<bool> g_signals_blocked{false};

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  g_signals_blocked = true;
}

absl::Status ValidateUnixSocketPath(const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  if (path[0] != '/' || path.size() > kMaxUnixSocketPathBytes) {
    return InvalidField("unix_socket",
                        absl::StrCat("expected an absolute path of at most ",
                                     kMaxUnixSocketPathBytes, " bytes"),
                        QuoteUserInput(path));
  }
  return absl::OkStatus();
}

struct ServiceServer::State {
  ServerOptions options;
  HealthService health;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<MetricsHttpServer> http;
  absl::Notification shutdown_requested;
  absl::Mutex mu;
  bool stopped ABSL_GUARDED_BY(mu) = false;
};

absl::StatusOr<std::unique_ptr<ServiceServer>> ServiceServer::Create(
    const ServerOptions& options, const std::vector<grpc::Service*>& services) {
  if (absl::Status valid = ValidateUnixSocketPath(options.unix_socket); !valid.ok()) {
    return valid;
  }
  // A metrics port outside -1..65535 or a negative grace period had been
  // taken as they were; a message limit of 0 or below refused every call.
  if (options.metrics_port < -1 || options.metrics_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics_port: expected -1 (off), 0 (any free port) or 1..65535, got ",
        options.metrics_port));
  }
  if (options.grace_period < absl::ZeroDuration() || options.grace_period > absl::Hours(1)) {
    return absl::InvalidArgumentError(absl::StrCat("--grace_period: expected 0s..1h, got ",
                                                   absl::FormatDuration(options.grace_period)));
  }
  if (options.max_receive_message_bytes < 1 || options.max_send_message_bytes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max message size: expected >= 1 byte, got ", options.max_receive_message_bytes,
                     " to receive, ", options.max_send_message_bytes, " to send"));
  }
  std::unique_ptr<ServiceServer> s(new ServiceServer());
  s->state_ = std::make_unique<State>();
  State& st = *s->state_;
  st.options = options;

  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(),
                           &s->grpc_port_);
  int unix_selected = 0;
  if (!options.unix_socket.empty()) {
    builder.AddListeningPort("unix:" + options.unix_socket,
                             grpc::InsecureServerCredentials(), &unix_selected);
  }
  // gRPC enables SO_REUSEPORT by default: a second instance on the same port
  // would silently take half the connections instead of failing to start.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.SetMaxSendMessageSize(options.max_send_message_bytes);
  // Keepalive: ping idle clients so dead connections are noticed, and let
  // well-behaved clients ping us without being sent GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.RegisterService(&st.health);
  for (grpc::Service* service : services) builder.RegisterService(service);
  st.health.SetStatus("", false);
  for (const std::string& name : options.health_service_names) {
    st.health.SetStatus(name, false);
  }

  st.server = builder.BuildAndStart();
  if (st.server == nullptr || s->grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot start gRPC server on ", options.address,
                     options.unix_socket.empty() ? "" : " and unix:",
                     options.unix_socket, " (address in use or invalid?)"));
  }
  if (!options.unix_socket.empty() && unix_selected == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on unix:", options.unix_socket, " (directory missing or not writable?)"));
  }

  if (options.metrics_port >= 0) {
    MetricsHttpServer::Options http;
    http.host = options.metrics_host;
    http.port = options.metrics_port;
    http.registry = options.registry;
    HealthService* health = &st.health;
    http.ready = [health] {
      return health->GetStatus("") ==
             grpc::health::v1::HealthCheckResponse::SERVING;
    };
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> h =
        MetricsHttpServer::Create(std::move(http));
    if (!h.ok()) return h.status();
    st.http = std::move(*h);
  }

  if (!options.port_file.empty()) {
    absl::Status w = WriteFileAtomically(
        options.port_file, absl::StrCat("grpc_port=", s->grpc_port_,
                                        "\nmetrics_port=", s->metrics_port(),
                                        "\n"));
    if (!w.ok()) {
      s->Shutdown();
      s->Wait();
      return w;
    }
  }
  LOG(INFO) << "listening: grpc " << s->grpc_target()
            << (options.unix_socket.empty() ? "" : " and ") << s->unix_target()
            << ", metrics "
            << (st.http ? absl::StrCat("http://", options.metrics_host, ":",
                                       st.http->port(), "/metrics")
                        : std::string("off"));
  return s;
}

ServiceServer::~ServiceServer() {
  if (state_ != nullptr) {
    Shutdown();
    Wait();
  }
}

int ServiceServer::metrics_port() const {
  return state_->http ? state_->http->port() : -1;
}

std::string ServiceServer::grpc_target() const {
  return absl::StrCat("127.0.0.1:", grpc_port_);
}

std::string ServiceServer::unix_target() const {
  return state_->options.unix_socket.empty() ? std::string()
                                              : "unix:" + state_->options.unix_socket;
}

void ServiceServer::SetServing(bool serving) {
  state_->health.SetAll(serving);
}

void ServiceServer::SetServing(const std::string& service, bool serving) {
  state_->health.SetStatus(service, serving);
}

void ServiceServer::Shutdown() {
  if (!state_->shutdown_requested.HasBeenNotified()) {
    state_->shutdown_requested.Notify();
  }
}

void ServiceServer::Wait() {
  State& st = *state_;
  if (g_signals_blocked) {
    const sigset_t set = TerminationSignals();
    while (!st.shutdown_requested.HasBeenNotified()) {
      // A bounded wait, so that Shutdown() from another thread is noticed.
      struct timespec timeout = {0, 200 * 1000 * 1000};
      const int sig = sigtimedwait(&set, nullptr, &timeout);
      if (sig == SIGTERM || sig == SIGINT) {
        LOG(INFO) << "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
                  << ": draining for up to " << st.options.grace_period;
        Shutdown();
      }
    }
  } else {
    st.shutdown_requested.WaitForNotification();
  }

  absl::MutexLock lock(&st.mu);
  if (st.stopped) return;
  st.stopped = true;
  // Tell load balancers first, then stop accepting and drain.
  st.health.Shutdown();
  const absl::Time start = absl::Now();
  if (st.server != nullptr) {  // null when Create failed to bind
    st.server->Shutdown(absl::ToChronoTime(start + st.options.grace_period));
    st.server->Wait();
  }
  if (st.http) st.http->Stop();
  LOG(INFO) << "server stopped after draining for " << absl::Now() - start;
}

}  // namespace recsys
