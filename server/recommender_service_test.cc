// RecommenderService over real gRPC on loopback, against a fake retrieval
// sidecar (a Retrieval service whose answers the test scripts): validation,
// the query it sends, deadline propagation, and the sidecar's failures
// surfacing with their code. recommender_loopback_test runs it against the
// real sidecar.
#include "server/recommender_service.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/server.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/test_util.h"

namespace recsys {
namespace {

namespace pb = ::recsys::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Answers Search with `hits` (or `status`), and records what it was asked.
class FakeRetrieval final : public pb::Retrieval::CallbackService {
 public:
  grpc::ServerUnaryReactor* Search(grpc::CallbackServerContext* ctx,
                                   const pb::SearchRequest* request,
                                   pb::SearchResponse* response) override {
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      last_request_ = *request;
      last_deadline_ = ctx->deadline();
      ++calls_;
      status = status_;
      if (status.ok()) {
        auto* result = response->add_results();
        for (const auto& [key, score] : hits_) {
          auto* hit = result->add_hits();
          hit->set_key(key);
          hit->set_score(score);
          (*hit->mutable_payload())["title"] = "Title of " + key;
        }
        response->set_version(request->version());
      }
    }
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  void Answer(std::vector<std::pair<std::string, float>> hits) {
    absl::MutexLock lock(&mu_);
    hits_ = std::move(hits);
    status_ = grpc::Status::OK;
  }
  void Fail(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    status_ = std::move(status);
  }
  pb::SearchRequest last_request() {
    absl::MutexLock lock(&mu_);
    return last_request_;
  }
  std::chrono::system_clock::time_point last_deadline() {
    absl::MutexLock lock(&mu_);
    return last_deadline_;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::pair<std::string, float>> hits_ ABSL_GUARDED_BY(mu_);
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  pb::SearchRequest last_request_ ABSL_GUARDED_BY(mu_);
  std::chrono::system_clock::time_point last_deadline_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

class RecommenderServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions so;
    so.metrics_port = -1;
    ASSERT_OK_AND_ASSIGN(sidecar_server_, ServiceServer::Create(so, {&sidecar_}));
    sidecar_stub_ = pb::Retrieval::NewStub(grpc::CreateChannel(
        sidecar_server_->grpc_target(), grpc::InsecureChannelCredentials()));

    const std::string models = FreshTestDir("recommender_service_models");
    ExportTestVersion(models, 4);
    ModelRegistry::Options ro;
    ro.models_dir = models;
    ro.poll_interval = absl::Hours(1);
    ASSERT_OK_AND_ASSIGN(registry_, ModelRegistry::Create(ro));

    RecommenderService::Options o;
    o.max_k = 50;
    o.max_history = 8;
    service_ = std::make_unique<RecommenderService>(o, registry_.get(), sidecar_stub_.get());
    ASSERT_OK_AND_ASSIGN(server_, ServiceServer::Create(so, {service_.get()}));
    stub_ = pb::Recommender::NewStub(
        grpc::CreateChannel(server_->grpc_target(), grpc::InsecureChannelCredentials()));
  }

  grpc::Status Recommend(const pb::RecommendRequest& req, pb::RecommendResponse* resp,
                         std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    return stub_->Recommend(&ctx, req, resp);
  }

  static pb::RecommendRequest Request(std::vector<std::string> history, int k) {
    pb::RecommendRequest r;
    for (auto& h : history) r.add_history(h);
    r.set_k(k);
    return r;
  }

  FakeRetrieval sidecar_;
  std::unique_ptr<ServiceServer> sidecar_server_;
  std::unique_ptr<pb::Retrieval::Stub> sidecar_stub_;
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<RecommenderService> service_;
  std::unique_ptr<ServiceServer> server_;
  std::unique_ptr<pb::Recommender::Stub> stub_;
};

TEST_F(RecommenderServiceTest, AsksTheSameVersionForTopKWithoutTheHistory) {
  sidecar_.Answer({{"c", 0.9f}, {"e", 0.5f}});
  pb::RecommendRequest req = Request({"a", "zzz", "b"}, 2);
  (*req.mutable_payload_filter())["color"] = "red";
  pb::RecommendResponse resp;
  ASSERT_TRUE(Recommend(req, &resp).ok());
  EXPECT_EQ(resp.model().version(), 4);
  EXPECT_EQ(resp.model().model(), "items");
  EXPECT_EQ(resp.unknown_history_items(), 1);
  ASSERT_EQ(resp.items_size(), 2);
  EXPECT_EQ(resp.items(0).key(), "c");
  EXPECT_FLOAT_EQ(resp.items(0).score(), 0.9f);
  EXPECT_EQ(resp.items(0).payload().at("title"), "Title of c");

  const pb::SearchRequest sent = sidecar_.last_request();
  EXPECT_EQ(sent.collection(), "items");
  EXPECT_EQ(sent.version(), 4);  // encoder and collection from one version
  EXPECT_EQ(sent.k(), 2);
  ASSERT_EQ(sent.queries_size(), 1);
  EXPECT_EQ(sent.queries(0).vector().values_size(), kTestDim);
  // Only the history keys the version knows: its collection holds no other.
  EXPECT_THAT(sent.exclude_keys(), ElementsAre("a", "b"));
  EXPECT_EQ(sent.payload_filter().at("color"), "red");
  EXPECT_TRUE(sent.include_payload());
}

TEST_F(RecommenderServiceTest, RefusesBadInputBeforeAnyWork) {
  struct Case {
    pb::RecommendRequest request;
    grpc::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases;
  cases.push_back({Request({"a"}, 0), grpc::StatusCode::INVALID_ARGUMENT,
                   "k: must be in [1, 50], got 0"});
  cases.push_back({Request({"a"}, 51), grpc::StatusCode::INVALID_ARGUMENT, "k: must be in"});
  cases.push_back({Request(std::vector<std::string>(9, "a"), 5),
                   grpc::StatusCode::INVALID_ARGUMENT, "history: at most 8 entries, got 9"});
  cases.push_back({Request({"a", ""}, 5), grpc::StatusCode::INVALID_ARGUMENT,
                   "history[1]: must not be empty"});
  cases.push_back({Request({std::string(5000, 'k')}, 5), grpc::StatusCode::INVALID_ARGUMENT,
                   "history[0]: at most 1024 bytes"});
  pb::RecommendRequest other = Request({"a"}, 5);
  other.mutable_model()->set_model(std::string(10000, 'm'));
  cases.push_back({other, grpc::StatusCode::NOT_FOUND, "(10000 bytes)"});
  pb::RecommendRequest negative = Request({"a"}, 5);
  negative.mutable_model()->set_version(-1);
  cases.push_back({negative, grpc::StatusCode::INVALID_ARGUMENT, "model.version: must be >= 0"});
  pb::RecommendRequest unloaded = Request({"a"}, 5);
  unloaded.mutable_model()->set_version(9);
  cases.push_back({unloaded, grpc::StatusCode::NOT_FOUND, "model.version: 9"});
  pb::RecommendRequest empty_filter_key = Request({"a"}, 5);
  (*empty_filter_key.mutable_payload_filter())[""] = "x";
  cases.push_back({empty_filter_key, grpc::StatusCode::INVALID_ARGUMENT,
                   "payload_filter key: must not be empty"});
  for (const Case& c : cases) {
    pb::RecommendResponse resp;
    grpc::Status s = Recommend(c.request, &resp);
    EXPECT_EQ(s.error_code(), c.code) << c.message << ": " << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(c.message));
    EXPECT_LT(s.error_message().size(), 300u) << "user input must be quoted truncated";
  }
  EXPECT_EQ(sidecar_.calls(), 0);  // nothing reached the sidecar
}

TEST_F(RecommenderServiceTest, PropagatesTheCallersDeadline) {
  sidecar_.Answer({{"c", 1.0f}});
  pb::RecommendResponse resp;
  const auto before = std::chrono::system_clock::now();
  ASSERT_TRUE(Recommend(Request({"a"}, 1), &resp, std::chrono::seconds(7)).ok());
  const auto seen = sidecar_.last_deadline() - before;
  // The sidecar saw the caller's deadline (not gRPC's infinite default).
  EXPECT_LE(seen, std::chrono::seconds(7) + std::chrono::milliseconds(50));
  EXPECT_GT(seen, std::chrono::seconds(5));
}

TEST_F(RecommenderServiceTest, SidecarFailuresKeepTheirCode) {
  for (grpc::StatusCode code : {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::NOT_FOUND,
                                grpc::StatusCode::RESOURCE_EXHAUSTED}) {
    sidecar_.Fail(grpc::Status(code, "collection items: shard down"));
    pb::RecommendResponse resp;
    grpc::Status s = Recommend(Request({"a"}, 3), &resp);
    EXPECT_EQ(s.error_code(), code);
    EXPECT_EQ(s.error_message(), "retrieval sidecar: collection items: shard down");
    EXPECT_EQ(resp.items_size(), 0);

    // In a batch, the same failure names the user it belongs to; a field
    // error reads as that user's field.
    pb::RecommendBatchRequest batch;
    *batch.add_users() = Request({"a"}, 3);
    *batch.add_users() = Request({"a", ""}, 3);
    pb::RecommendBatchResponse answers;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    ASSERT_TRUE(stub_->RecommendBatch(&ctx, batch, &answers).ok());
    ASSERT_EQ(answers.results_size(), 2);
    EXPECT_EQ(answers.results(0).code(), static_cast<int>(code));
    EXPECT_EQ(answers.results(0).message(),
              "users[0]: retrieval sidecar: collection items: shard down");
    EXPECT_EQ(answers.results(1).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(answers.results(1).message(), ::testing::StartsWith("users[1].history[1]: "));
  }
}

}  // namespace
}  // namespace recsys
