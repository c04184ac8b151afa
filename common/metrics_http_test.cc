#include "common/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/metrics.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{5, 0};  // no test read waits longer than this
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// Sends `request` and reads until the server closes (or 5 s pass).
std::string Fetch(int port, const std::string& request) {
  const int fd = Connect(port);
  if (fd < 0) return "";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, n);
  close(fd);
  return out;
}

class MetricsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.AddCounter("test_requests_total", "Requests.", {})
        ->WithLabels({})
        ->Increment();
    MetricsHttpServer::Options o;
    o.registry = &registry_;
    o.ready = [this] { return ready_.load(); };
    o.request_timeout = absl::Seconds(2);
    o.max_connections = 32;
    auto s = MetricsHttpServer::Create(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }

  MetricsRegistry registry_;
  std::atomic<bool> ready_{true};
  std::unique_ptr<MetricsHttpServer> server_;
};

TEST_F(MetricsHttpTest, ServesMetricsAndHealth) {
  const std::string metrics =
      Fetch(server_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(metrics, "HTTP/1.1 200")) << metrics;
  EXPECT_NE(metrics.find("test_requests_total 1"), std::string::npos) << metrics;
  EXPECT_TRUE(absl::StartsWith(
      Fetch(server_->port(), "GET /healthz HTTP/1.1\r\n\r\n"), "HTTP/1.1 200"));
  ready_ = false;
  EXPECT_TRUE(absl::StartsWith(
      Fetch(server_->port(), "GET /healthz HTTP/1.1\r\n\r\n"), "HTTP/1.1 503"));
  EXPECT_TRUE(absl::StartsWith(
      Fetch(server_->port(), "GET /nope HTTP/1.1\r\n\r\n"), "HTTP/1.1 404"));
  EXPECT_TRUE(absl::StartsWith(
      Fetch(server_->port(), "POST /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 405"));
  EXPECT_TRUE(absl::StartsWith(
      Fetch(server_->port(), "GET /" + std::string(20000, 'a')), "HTTP/1.1 431"));
}

// The probe: slow and idle half-sent connections (more than the
// server admits at once) must not delay /healthz or /metrics.
TEST_F(MetricsHttpTest, ProbesAnswerWhileSlowClientsHoldConnections) {
  std::vector<int> idle;
  for (int i = 0; i < 200; ++i) {
    const int fd = Connect(server_->port());
    ASSERT_GE(fd, 0);
    send(fd, "GET /metr", 9, MSG_NOSIGNAL);
    idle.push_back(fd);
  }
  std::vector<int> trickle;
  for (int i = 0; i < 8; ++i) {
    const int fd = Connect(server_->port());
    ASSERT_GE(fd, 0);
    send(fd, "G", 1, MSG_NOSIGNAL);
    trickle.push_back(fd);
  }
  for (int round = 0; round < 5; ++round) {
    for (int fd : trickle) send(fd, "E", 1, MSG_NOSIGNAL);
    const absl::Time start = absl::Now();
    const std::string health =
        Fetch(server_->port(), "GET /healthz HTTP/1.1\r\n\r\n");
    const std::string metrics =
        Fetch(server_->port(), "GET /metrics HTTP/1.1\r\n\r\n");
    EXPECT_TRUE(absl::StartsWith(health, "HTTP/1.1 200")) << round;
    EXPECT_TRUE(absl::StartsWith(metrics, "HTTP/1.1 200")) << round;
    EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << round;
  }
  for (int fd : idle) close(fd);
  for (int fd : trickle) close(fd);
}

TEST_F(MetricsHttpTest, ClosesAClientThatTricklesPastTheTimeout) {
  const int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  timeval tv{0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const absl::Time start = absl::Now();
  const absl::Time give_up = start + absl::Seconds(10);
  bool closed = false;
  char buf[64];
  while (!closed && absl::Now() < give_up) {
    if (send(fd, "X", 1, MSG_NOSIGNAL) < 0) {
      closed = true;
      break;
    }
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);  // waits <= 100 ms
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      closed = true;
    }
  }
  close(fd);
  EXPECT_TRUE(closed);
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
}

TEST_F(MetricsHttpTest, StopReturnsWithClientsConnected) {
  const int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  send(fd, "GET", 3, MSG_NOSIGNAL);
  const absl::Time start = absl::Now();
  server_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  close(fd);
}

}  // namespace
}  // namespace recsys
