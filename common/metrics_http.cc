#include "common/metrics_http.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/metrics.h"
#include "httplib.h"

namespace recsys {

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Create(
    Options options) {
  std::unique_ptr<MetricsHttpServer> http(new MetricsHttpServer());
  http->server_ = std::make_unique<httplib::Server>();
  MetricsRegistry* registry =
      options.registry ? options.registry : &MetricsRegistry::Global();
  http->server_->Get("/metrics", [registry](const httplib::Request&,
                                            httplib::Response& res) {
    res.set_content(registry->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  std::function<bool()> ready = std::move(options.ready);
  http->server_->Get("/healthz", [ready](const httplib::Request&,
                                         httplib::Response& res) {
    const bool ok = !ready || ready();
    res.status = ok ? 200 : 503;
    res.set_content(ok ? "ok\n" : "not ready\n", "text/plain");
  });
  if (options.port == 0) {
    http->port_ = http->server_->bind_to_any_port(options.host.c_str());
  } else if (http->server_->bind_to_port(options.host.c_str(), options.port)) {
    http->port_ = options.port;
  } else {
    http->port_ = -1;
  }
  if (http->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "metrics: cannot listen on ", options.host, ":", options.port));
  }
  httplib::Server* server = http->server_.get();
  http->thread_ = std::thread([server] { server->listen_after_bind(); });
  // httplib's stop() does nothing until the listener runs: a Stop() right
  // after Create() would otherwise leave the thread listening and join()
  // waiting forever. So return only once it runs.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!server->is_running()) {
    if (absl::Now() > deadline) {
      http->Stop();
      return absl::UnavailableError("metrics: the HTTP listener did not start");
    }
    absl::SleepFor(absl::Microseconds(200));
  }
  return http;
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

void MetricsHttpServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace recsys
