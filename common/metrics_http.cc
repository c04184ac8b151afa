#include "common/metrics_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/metrics.h"

namespace recsys {
namespace {

struct Connection {
  int fd = -1;
  absl::Time deadline;
  std::string in;
  std::string out;     // response, once the request is complete
  size_t written = 0;
  bool responding = false;
};

std::string Response(int code, absl::string_view reason,
                     absl::string_view content_type, absl::string_view body) {
  return absl::StrCat("HTTP/1.1 ", code, " ", reason,
                      "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(),
                      "\r\nConnection: close\r\n\r\n", body);
}

void SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Create(
    Options options) {
  std::unique_ptr<MetricsHttpServer> http(new MetricsHttpServer());
  if (options.max_connections < 1 || options.max_request_bytes < 64 ||
      options.request_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "metrics: max_connections >= 1, max_request_bytes >= 64 and a "
        "positive request_timeout expected");
  }
  http->registry_ =
      options.registry ? options.registry : &MetricsRegistry::Global();
  http->options_ = std::move(options);
  const Options& o = http->options_;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = absl::StrCat(o.port);
  if (getaddrinfo(o.host.c_str(), port.c_str(), &hints, &found) != 0 ||
      found == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("metrics: cannot resolve ", o.host));
  }
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 128) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat(
        "metrics: cannot listen on ", o.host, ":", o.port));
  }
  SetNonBlocking(fd);
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  http->port_ = ntohs(addr.ss_family == AF_INET6
                          ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                          : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  http->listen_fd_ = fd;
  if (pipe2(http->wake_fd_, O_CLOEXEC | O_NONBLOCK) != 0) {
    close(fd);
    http->listen_fd_ = -1;
    return absl::InternalError("metrics: pipe2 failed");
  }
  MetricsHttpServer* self = http.get();
  http->thread_ = std::thread([self] { self->Loop(); });
  return http;
}

void MetricsHttpServer::Loop() {
  std::list<Connection> conns;  // oldest first
  std::vector<pollfd> fds;
  std::vector<std::list<Connection>::iterator> index;
  auto drop = [&](std::list<Connection>::iterator it) {
    close(it->fd);
    return conns.erase(it);
  };
  for (;;) {
    const absl::Time now = absl::Now();
    for (auto it = conns.begin(); it != conns.end();) {
      it = now >= it->deadline ? drop(it) : std::next(it);
    }
    fds.clear();
    index.clear();
    fds.push_back({wake_fd_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    absl::Time next_deadline = absl::InfiniteFuture();
    for (auto it = conns.begin(); it != conns.end(); ++it) {
      fds.push_back({it->fd, static_cast<short>(it->responding ? POLLOUT : POLLIN), 0});
      index.push_back(it);
      next_deadline = std::min(next_deadline, it->deadline);
    }
    int timeout_ms = -1;
    if (next_deadline != absl::InfiniteFuture()) {
      timeout_ms = static_cast<int>(
          std::max<int64_t>(1, absl::ToInt64Milliseconds(next_deadline - now) + 1));
    }
    const int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) break;  // Stop()
    for (size_t i = 0; i < index.size(); ++i) {
      const short ev = fds[i + 2].revents;
      if (ev == 0) continue;
      auto it = index[i];
      Connection& c = *it;
      if (!c.responding) {
        char buf[4096];
        const ssize_t got = recv(c.fd, buf, sizeof(buf), 0);
        if (got <= 0) {
          if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
          drop(it);
          continue;
        }
        c.in.append(buf, static_cast<size_t>(got));
        if (c.in.size() > static_cast<size_t>(options_.max_request_bytes)) {
          c.out = Response(431, "Request Header Fields Too Large", "text/plain",
                           "request too large\n");
          c.responding = true;
        } else if (c.in.find("\r\n\r\n") != std::string::npos ||
                   c.in.find("\n\n") != std::string::npos) {
          const size_t eol = c.in.find_first_of("\r\n");
          const absl::string_view line = absl::string_view(c.in).substr(0, eol);
          if (absl::StartsWith(line, "GET /metrics ") ||
              line == "GET /metrics") {
            c.out = Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                             registry_->Render());
          } else if (absl::StartsWith(line, "GET /healthz ") ||
                     line == "GET /healthz") {
            const bool ok = !options_.ready || options_.ready();
            c.out = ok ? Response(200, "OK", "text/plain", "ok\n")
                       : Response(503, "Service Unavailable", "text/plain",
                                  "not ready\n");
          } else if (absl::StartsWith(line, "GET ")) {
            c.out = Response(404, "Not Found", "text/plain", "not found\n");
          } else {
            c.out = Response(405, "Method Not Allowed", "text/plain",
                             "only GET\n");
          }
          c.responding = true;
        }
        continue;
      }
      const ssize_t put = send(c.fd, c.out.data() + c.written,
                               c.out.size() - c.written, MSG_NOSIGNAL);
      if (put < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        drop(it);
        continue;
      }
      c.written += static_cast<size_t>(put);
      if (c.written == c.out.size()) {
        shutdown(c.fd, SHUT_WR);
        drop(it);
      }
    }
    if (fds[1].revents & POLLIN) {
      for (;;) {
        const int fd = accept4(listen_fd_, nullptr, nullptr,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        if (static_cast<int>(conns.size()) >= options_.max_connections) {
          // Full: the oldest connection has had the most time to send its
          // request; a probe arriving now gets its place.
          drop(conns.begin());
        }
        Connection c;
        c.fd = fd;
        c.deadline = absl::Now() + options_.request_timeout;
        conns.push_back(std::move(c));
      }
    }
  }
  for (Connection& c : conns) close(c.fd);
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

void MetricsHttpServer::Stop() {
  if (thread_.joinable()) {
    const char byte = 1;
    (void)!write(wake_fd_[1], &byte, 1);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_fd_[0], &wake_fd_[1]}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

}  // namespace recsys
