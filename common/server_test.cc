#include "common/server.h"

#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/metrics.h"
#include "common/status_matchers.h"
#include "common/test_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "proto/health.grpc.pb.h"

namespace recsys {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using recsys::test::SleepReply;
using recsys::test::SleepRequest;
using recsys::test::TestService;
using ::testing::HasSubstr;

// Sleeps as long as asked (the work under test), ending early if cancelled.
class SleepService final : public TestService::CallbackService {
 public:
  ~SleepService() override {
    absl::MutexLock lock(&mu_);
    for (auto& t : threads_) t.join();
  }

  grpc::ServerUnaryReactor* Sleep(grpc::CallbackServerContext* context,
                                  const SleepRequest* request,
                                  SleepReply* reply) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    const absl::Time until = absl::Now() + absl::Milliseconds(request->millis());
    absl::MutexLock lock(&mu_);
    started_++;
    threads_.emplace_back([context, reactor, reply, until] {
      while (absl::Now() < until) {
        if (context->IsCancelled()) {
          reactor->Finish(grpc::Status::CANCELLED);
          return;
        }
        absl::SleepFor(absl::Milliseconds(2));
      }
      reply->set_completed(true);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  int started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  int started_ ABSL_GUARDED_BY(mu_) = 0;
};

class ServerTest : public ::testing::Test {
 protected:
  void Start(ServerOptions options = ServerOptions()) {
    options.health_service_names = {"recsys.test.TestService"};
    options.registry = &registry_;
    ASSERT_OK_AND_ASSIGN(server_, ServiceServer::Create(options, {&service_}));
    channel_ = grpc::CreateChannel(server_->grpc_target(),
                                   grpc::InsecureChannelCredentials());
    health_ = Health::NewStub(channel_);
    test_ = TestService::NewStub(channel_);
  }

  grpc::Status Check(const std::string& service, HealthCheckResponse* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    HealthCheckRequest req;
    req.set_service(service);
    return health_->Check(&ctx, req, out);
  }

  // One asynchronous Sleep call and its outcome.
  struct InFlightSleep {
    grpc::ClientContext context;
    SleepRequest request;
    SleepReply reply;
    grpc::Status status;
    absl::Notification done;
  };

  // Starts a Sleep of `millis` and returns once the server runs it (bounded
  // wait; the caller asserts service_.started()).
  void StartSleep(int64_t millis, InFlightSleep* call) {
    call->request.set_millis(millis);
    test_->async()->Sleep(&call->context, &call->request, &call->reply,
                          [call](grpc::Status s) {
                            call->status = std::move(s);
                            call->done.Notify();
                          });
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (service_.started() == 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }

  MetricsRegistry registry_;
  SleepService service_;
  std::unique_ptr<ServiceServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Health::Stub> health_;
  std::unique_ptr<TestService::Stub> test_;
};

TEST_F(ServerTest, HealthIsNotServingUntilReady) {
  Start();
  HealthCheckResponse resp;
  ASSERT_TRUE(Check("", &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::NOT_SERVING);
  ASSERT_TRUE(Check("recsys.test.TestService", &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::NOT_SERVING);
  grpc::Status unknown = Check("no.such.Service", &resp);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);

  server_->SetServing(true);
  ASSERT_TRUE(Check("", &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
  ASSERT_TRUE(Check("recsys.test.TestService", &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);

  server_->SetServing("recsys.test.TestService", false);
  ASSERT_TRUE(Check("recsys.test.TestService", &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::NOT_SERVING);
  ASSERT_TRUE(Check("", &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
}

TEST_F(ServerTest, WatchStreamsChangesAndEndsOnShutdown) {
  Start();
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  HealthCheckRequest req;
  auto reader = health_->Watch(&ctx, req);
  HealthCheckResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.status(), HealthCheckResponse::NOT_SERVING);
  server_->SetServing(true);
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);

  std::thread stopper([this] {
    server_->Shutdown();
    server_->Wait();
  });
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(reader->Read(&resp));
  EXPECT_TRUE(reader->Finish().ok());
  stopper.join();
}

TEST_F(ServerTest, ServesMetricsAndReadinessOverHttp) {
  Start();
  registry_.AddCounter("test_hits_total", "Hits.")->WithLabels({})->Increment(4);
  httplib::Client http("127.0.0.1", server_->metrics_port());
  auto ready = http.Get("/healthz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  server_->SetServing(true);
  ready = http.Get("/healthz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->body, HasSubstr("test_hits_total 4\n"));
  EXPECT_THAT(metrics->get_header_value("Content-Type"),
              HasSubstr("version=0.0.4"));
}

TEST_F(ServerTest, DrainsInFlightCallsOnShutdown) {
  ServerOptions options;
  options.grace_period = absl::Seconds(20);
  Start(options);
  InFlightSleep call;
  StartSleep(300, &call);
  ASSERT_EQ(service_.started(), 1);
  const absl::Time begin = absl::Now();
  server_->Shutdown();
  server_->Wait();
  EXPECT_LT(absl::Now() - begin, absl::Seconds(10));
  ASSERT_TRUE(call.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(call.status.ok()) << call.status.error_message();
  EXPECT_TRUE(call.reply.completed());

  // New calls are refused after shutdown.
  grpc::ClientContext late;
  late.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  SleepReply late_reply;
  grpc::Status late_status = test_->Sleep(&late, call.request, &late_reply);
  EXPECT_FALSE(late_status.ok());
}

TEST_F(ServerTest, CancelsCallsThatOutliveTheGracePeriod) {
  ServerOptions options;
  options.grace_period = absl::Milliseconds(200);
  Start(options);
  InFlightSleep call;
  StartSleep(60 * 1000, &call);
  ASSERT_EQ(service_.started(), 1);
  const absl::Time begin = absl::Now();
  server_->Shutdown();
  server_->Wait();
  EXPECT_LT(absl::Now() - begin, absl::Seconds(5));
  ASSERT_TRUE(call.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(call.status.ok());
  EXPECT_FALSE(call.reply.completed());
}

TEST_F(ServerTest, RejectsOversizeMessages) {
  ServerOptions options;
  options.max_receive_message_bytes = 1024;
  Start(options);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  HealthCheckRequest req;
  req.set_service(std::string(4096, 'x'));
  HealthCheckResponse resp;
  grpc::Status s = health_->Check(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(ServerTest, WritesPortFile) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  ServerOptions options;
  options.port_file = std::string(tmp ? tmp : "/tmp") + "/ports";
  Start(options);
  ASSERT_OK_AND_ASSIGN(std::string ports, ReadFileToString(options.port_file));
  EXPECT_EQ(ports, "grpc_port=" + std::to_string(server_->grpc_port()) +
                       "\nmetrics_port=" +
                       std::to_string(server_->metrics_port()) + "\n");
}

// A fresh directory short enough for a socket path (Bazel's TEST_TMPDIR can
// be longer than sun_path).
std::string ShortTempDir() {
  char dir[] = "/tmp/server_test_XXXXXX";
  if (mkdtemp(dir) == nullptr) return "/tmp";
  return dir;
}

TEST_F(ServerTest, AlsoServesOnAUnixSocket) {
  ServerOptions options;
  const std::string dir = ShortTempDir();
  options.unix_socket = dir + "/server.sock";
  // A socket file left by an earlier run is replaced.
  for (int run = 0; run < 2; ++run) {
    server_.reset();
    Start(options);
    EXPECT_EQ(server_->unix_target(), "unix:" + options.unix_socket);
    auto over_unix = Health::NewStub(grpc::CreateChannel(server_->unix_target(),
                                                         grpc::InsecureChannelCredentials()));
    auto check = [&](HealthCheckResponse* out) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
      HealthCheckRequest req;
      return over_unix->Check(&ctx, req, out);
    };
    HealthCheckResponse resp;
    ASSERT_TRUE(check(&resp).ok());
    EXPECT_EQ(resp.status(), HealthCheckResponse::NOT_SERVING);
    server_->SetServing(true);
    ASSERT_TRUE(check(&resp).ok());
    EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
    // TCP still serves beside it.
    ASSERT_TRUE(Check("", &resp).ok());
    EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
  }
  EXPECT_EQ(ServerOptions().unix_socket, "");  // off by default
  server_.reset();
  (void)RemoveRecursively(dir);
}

TEST_F(ServerTest, RejectsABadUnixSocketPath) {
  SleepService other;
  ServerOptions options;
  options.unix_socket = "relative.sock";
  EXPECT_THAT(ServiceServer::Create(options, {&other}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unix_socket: expected an absolute path of at most 107 bytes, "
                                 "got 'relative.sock'")));
  options.unix_socket = "/" + std::string(107, 'a');
  EXPECT_THAT(ServiceServer::Create(options, {&other}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unix_socket: ")));
  options.unix_socket = "/" + std::string(106, 'a');  // fits, but no such file system entry
  EXPECT_OK(ValidateUnixSocketPath(options.unix_socket));
  options.unix_socket = "/tmp/server_test_no_such_dir_" + std::to_string(getpid()) + "/x.sock";
  EXPECT_THAT(ServiceServer::Create(options, {&other}),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("unix:")));
}

TEST_F(ServerTest, BusyAddressIsAnError) {
  Start();
  ServerOptions options;
  options.address = server_->grpc_target();
  SleepService other;
  EXPECT_THAT(ServiceServer::Create(options, {&other}),
              StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace recsys
