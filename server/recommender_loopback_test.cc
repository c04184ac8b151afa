// RecommenderService over gRPC on loopback against a real retrieval sidecar
// (RetrievalService in process, Flat collection published from the model
// versions by the real publisher): coalescing, cold start, SimilarItems, the
// batch RPC, and a version switch under load. Every answer is checked
// against a brute-force top k over the answering version's embeddings.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/server.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "model/model_publisher.h"
#include "model/model_version.h"
#include "retrieval/client/retrieval_client.h"
#include "retrieval/collection_store.h"
#include "retrieval/retrieval_service.h"
#include "server/model_registry.h"
#include "server/recommender_service.h"
#include "server/serving_model.h"
#include "server/sidecar_versions.h"
#include "server/test_util.h"

namespace recsys {
namespace {

namespace pb = ::recsys::v1;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using Ranked = std::vector<std::pair<std::string, float>>;

// The exact answer: inner products of the user vector with every item not
// excluded, best first (ties by key, as neither side promises an order).
Ranked BruteForce(const ServingModel& model, const std::vector<float>& query, int k,
                  const std::vector<std::string>& exclude) {
  Ranked all;
  const int64_t d = model.info().embedding_dim;
  for (int64_t row = 0; row < model.info().num_items; ++row) {
    const std::string& key = model.KeyOf(row);
    if (std::find(exclude.begin(), exclude.end(), key) != exclude.end()) continue;
    const float* v = model.ItemVector(row);
    float s = 0;
    for (int64_t i = 0; i < d; ++i) s += v[i] * query[i];
    all.emplace_back(key, s);
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (static_cast<int>(all.size()) > k) all.resize(k);
  return all;
}

void ExpectSameRanking(const pb::RecommendResponse& got, const Ranked& want,
                       const std::string& what) {
  ASSERT_EQ(got.items_size(), static_cast<int>(want.size())) << what;
  for (int i = 0; i < got.items_size(); ++i) {
    EXPECT_EQ(got.items(i).key(), want[i].first) << what << " rank " << i;
    EXPECT_NEAR(got.items(i).score(), want[i].second, 1e-5) << what << " rank " << i;
  }
}

pb::RecommendRequest Request(std::vector<std::string> history, int k, int64_t version = 0) {
  pb::RecommendRequest r;
  for (auto& h : history) r.add_history(h);
  r.set_k(k);
  r.mutable_model()->set_version(version);
  return r;
}

class RecommenderLoopbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(sidecar_, retrieval::RetrievalService::Create({}));
    ServerOptions so;
    so.metrics_port = -1;
    ASSERT_OK_AND_ASSIGN(sidecar_server_, ServiceServer::Create(so, {sidecar_.get()}));
    retrieval::CollectionStore::Options store;
    store.data_dir = FreshTestDir("loopback_sidecar");
    ASSERT_OK_AND_ASSIGN(auto opened, retrieval::CollectionStore::Open(store));
    sidecar_->SetStore(std::move(opened));
    sidecar_server_->SetServing(true);
    RetrievalClient::Options co;
    co.target = sidecar_server_->grpc_target();
    co.deadline = absl::Seconds(20);
    ASSERT_OK_AND_ASSIGN(client_, RetrievalClient::Create(co));

    models_ = FreshTestDir("loopback_models");
    Publish(1, /*with_popularity=*/true);
    ModelRegistry::Options ro;
    ro.models_dir = models_;
    ro.versions_to_keep = 3;
    ro.poll_interval = absl::Hours(1);  // the tests refresh explicitly
    ro.servable = SidecarVersions(client_.get(), "items");
    ASSERT_OK_AND_ASSIGN(registry_, ModelRegistry::Create(ro));
    ASSERT_EQ(registry_->live_version(), 1);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    server_.reset();
    service_.reset();
    if (sidecar_server_) sidecar_server_->Shutdown();
  }

  void Publish(int64_t version, bool with_popularity) {
    ExportTestVersion(models_, version, nullptr, with_popularity);
    PublishOptions po;
    ASSERT_OK(PublishModelVersion(ModelVersionPath(models_, version), po, client_.get())
                  .status());
  }

  void StartService(RecommenderService::Options o) {
    if (server_) server_->Shutdown();
    server_.reset();
    service_ = std::make_unique<RecommenderService>(o, registry_.get(), client_->stub());
    ServerOptions so;
    so.metrics_port = -1;
    ASSERT_OK_AND_ASSIGN(server_, ServiceServer::Create(so, {service_.get()}));
    channel_ = grpc::CreateChannel(server_->grpc_target(), grpc::InsecureChannelCredentials());
    stub_ = pb::Recommender::NewStub(channel_);
  }

  grpc::Status Recommend(const pb::RecommendRequest& req, pb::RecommendResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return stub_->Recommend(&ctx, req, resp);
  }

  std::shared_ptr<const ServingModel> Model(int64_t version) {
    absl::StatusOr<std::shared_ptr<const ServingModel>> m = registry_->Get(version);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : nullptr;
  }

  // The exact answer of `version` for a request.
  Ranked Expected(int64_t version, const pb::RecommendRequest& r) {
    auto model = Model(version);
    std::vector<std::string> history(r.history().begin(), r.history().end());
    absl::StatusOr<std::vector<float>> user = model->EncodeUser(history, nullptr);
    EXPECT_TRUE(user.ok()) << user.status();
    return BruteForce(*model, *user, r.k(),
                      r.include_history() ? std::vector<std::string>() : history);
  }

  std::unique_ptr<retrieval::RetrievalService> sidecar_;
  std::unique_ptr<ServiceServer> sidecar_server_;
  std::unique_ptr<RetrievalClient> client_;
  std::string models_;
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<RecommenderService> service_;
  std::unique_ptr<ServiceServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Recommender::Stub> stub_;
};

const std::vector<std::vector<std::string>>& Histories() {
  static const auto* h = new std::vector<std::vector<std::string>>{
      {"a"}, {"b", "c"}, {"e", "d", "a"}, {"c"}, {"d", "zzz"}, {"a", "b", "c", "d", "e", "b"},
      {"e"}, {"b", "a"}};
  return *h;
}

TEST_F(RecommenderLoopbackTest, CoalescesConcurrentRequestsIntoFewerForwardsWithTheSameAnswers) {
  const int n = static_cast<int>(Histories().size());
  // One at a time: every request is its own forward and its own Search.
  StartService({});
  std::vector<pb::RecommendResponse> alone(n);
  for (int i = 0; i < n; ++i) {
    pb::RecommendRequest r = Request(Histories()[i], 2);
    r.set_include_history(i == 5);  // a query whose history is not dropped
    ASSERT_TRUE(Recommend(r, &alone[i]).ok());
    ExpectSameRanking(alone[i], Expected(1, r), absl::StrCat("alone ", i));
  }
  EXPECT_EQ(service_->encoder_forwards(), n);

  // Concurrently, into batches of n: a worker waits until the batch is full.
  RecommenderService::Options o;
  o.batching.max_batch_size = n;
  o.batching.max_wait = absl::Seconds(15);
  StartService(o);
  std::vector<pb::RecommendResponse> together(n);
  std::vector<grpc::Status> status(n);
  std::vector<std::thread> clients;
  for (int i = 0; i < n; ++i) {
    clients.emplace_back([&, i] {
      pb::RecommendRequest r = Request(Histories()[i], 2);
      r.set_include_history(i == 5);
      status[i] = Recommend(r, &together[i]);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(service_->encoder_forwards(), 1);  // n requests, one forward
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(status[i].ok()) << i << ": " << status[i].error_message();
    EXPECT_EQ(together[i].fallback(), pb::FALLBACK_NONE);
    ASSERT_EQ(together[i].items_size(), alone[i].items_size()) << i;
    for (int j = 0; j < alone[i].items_size(); ++j) {
      EXPECT_EQ(together[i].items(j).key(), alone[i].items(j).key()) << i;
      EXPECT_NEAR(together[i].items(j).score(), alone[i].items(j).score(), 1e-5) << i;
    }
  }
  EXPECT_EQ(together[4].unknown_history_items(), 1);
}

TEST_F(RecommenderLoopbackTest, ColdStartAnswersTheVersionsMostPopularItems) {
  StartService({});
  for (const auto& history : std::vector<std::vector<std::string>>{{}, {"zz", "yy"}}) {
    pb::RecommendResponse resp;
    ASSERT_TRUE(Recommend(Request(history, 3), &resp).ok());
    EXPECT_EQ(resp.fallback(), pb::POPULAR);
    EXPECT_EQ(resp.model().version(), 1);
    EXPECT_EQ(resp.unknown_history_items(), static_cast<int>(history.size()));
    // kTestPopularity: b=5, e=4, c=3.
    ASSERT_EQ(resp.items_size(), 3);
    EXPECT_EQ(resp.items(0).key(), "b");
    EXPECT_EQ(resp.items(1).key(), "e");
    EXPECT_EQ(resp.items(2).key(), "c");
    EXPECT_EQ(resp.items(0).score(), 5.0f);
  }
  EXPECT_EQ(service_->encoder_forwards(), 0);

  // A version without a popularity table cannot cold-start.
  Publish(2, /*with_popularity=*/false);
  registry_->Refresh();
  pb::RecommendResponse resp;
  grpc::Status s = Recommend(Request({}, 3, 2), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("model version 2"));
  EXPECT_THAT(s.error_message(), HasSubstr("no popularity table"));
  // Known history on that version is served normally.
  ASSERT_TRUE(Recommend(Request({"a"}, 2, 2), &resp).ok());
  ExpectSameRanking(resp, Expected(2, Request({"a"}, 2)), "version 2");
}

TEST_F(RecommenderLoopbackTest, SimilarItemsRanksTheCatalogByTheItemsEmbedding) {
  StartService({});
  pb::SimilarItemsRequest req;
  req.set_item_key("c");
  req.set_k(10);
  pb::SimilarItemsResponse resp;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    ASSERT_TRUE(stub_->SimilarItems(&ctx, req, &resp).ok());
  }
  auto model = Model(1);
  const float* c = model->ItemVector(model->RowOf("c"));
  Ranked want = BruteForce(*model, std::vector<float>(c, c + kTestDim), 10, {"c"});
  ASSERT_EQ(resp.items_size(), 4);  // every other item, "c" itself excluded
  EXPECT_EQ(resp.model().version(), 1);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(resp.items(i).key(), want[i].first);
    EXPECT_NEAR(resp.items(i).score(), want[i].second, 1e-5);
  }

  struct Case {
    std::string key;
    int k;
    grpc::StatusCode code;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"", 3, grpc::StatusCode::INVALID_ARGUMENT, "item_key: must not be empty"},
           {"nope", 3, grpc::StatusCode::NOT_FOUND, "item_key: 'nope' is not in the catalog"},
           {std::string(3000, 'x'), 3, grpc::StatusCode::INVALID_ARGUMENT, "item_key"},
           {"c", 0, grpc::StatusCode::INVALID_ARGUMENT, "k: must be in [1, 1000], got 0"}}) {
    req.set_item_key(c.key);
    req.set_k(c.k);
    grpc::ClientContext ctx;
    grpc::Status s = stub_->SimilarItems(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), c.code) << c.message;
    EXPECT_THAT(s.error_message(), HasSubstr(c.message));
    EXPECT_LT(s.error_message().size(), 300u);
  }
}

TEST_F(RecommenderLoopbackTest, BatchAnswersEachUserWithItsOwnStatus) {
  RecommenderService::Options o;
  o.max_batch_users = 4;
  StartService(o);
  pb::RecommendBatchRequest req;
  *req.add_users() = Request({"a", "b"}, 2);
  *req.add_users() = Request({"a"}, 0);  // bad k
  *req.add_users() = Request({}, 2);     // cold start
  *req.add_users() = Request({"c"}, 2, 99);  // unknown pinned version
  pb::RecommendBatchResponse resp;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    grpc::Status s = stub_->RecommendBatch(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ASSERT_EQ(resp.results_size(), 4);
  EXPECT_EQ(resp.results(0).code(), 0);
  ExpectSameRanking(resp.results(0).response(), Expected(1, req.users(0)), "user 0");
  EXPECT_EQ(resp.results(1).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  // Each message names the user by its index in the request.
  EXPECT_THAT(resp.results(1).message(), StartsWith("users[1].k: must be in"));
  EXPECT_EQ(resp.results(1).response().items_size(), 0);
  EXPECT_EQ(resp.results(2).code(), 0);
  EXPECT_EQ(resp.results(2).response().fallback(), pb::POPULAR);
  EXPECT_EQ(resp.results(2).response().items_size(), 2);
  EXPECT_EQ(resp.results(3).code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_THAT(resp.results(3).message(), StartsWith("users[3].model.version: 99"));
  EXPECT_EQ(resp.results(0).message(), "");

  // Over the limit, or empty: the call itself is refused, naming the field.
  *req.add_users() = Request({"a"}, 1);
  for (int users : {5, 0}) {
    pb::RecommendBatchRequest r = req;
    r.mutable_users()->DeleteSubrange(users, r.users_size() - users);
    grpc::ClientContext ctx;
    grpc::Status s = stub_->RecommendBatch(&ctx, r, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(),
                HasSubstr(users ? "users: at most 4 entries, got 5" : "users: at least one"));
  }
}

// Keys that are not UTF-8 (a proto3 string must be): INVALID_ARGUMENT naming
// the key, in a batch for that user only; the server keeps answering.
TEST_F(RecommenderLoopbackTest, KeysThatAreNotUtf8AreInvalidArgumentNamingTheKey) {
  StartService({});
  pb::RecommendResponse resp;
  grpc::Status s = Recommend(Request({"a", "caf\xe9", "b"}, 2), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "history[1]: expected valid UTF-8, got 'caf\\xe9'");

  pb::RecommendRequest filtered = Request({"a"}, 2);
  (*filtered.mutable_payload_filter())["title"] = "\xff";
  s = Recommend(filtered, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "payload_filter['title']: expected valid UTF-8, got '\\xff'");

  pb::RecommendBatchRequest batch;
  *batch.add_users() = Request({"a", "b"}, 2);
  *batch.add_users() = Request({"c", "\xc3("}, 2);
  *batch.add_users() = Request({"d"}, 2);
  pb::RecommendBatchResponse batch_resp;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    s = stub_->RecommendBatch(&ctx, batch, &batch_resp);
  }
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(batch_resp.results_size(), 3);
  EXPECT_EQ(batch_resp.results(1).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(batch_resp.results(1).message(),
            "users[1].history[1]: expected valid UTF-8, got '\\xc3('");
  EXPECT_EQ(batch_resp.results(1).response().items_size(), 0);
  for (int i : {0, 2}) {
    EXPECT_EQ(batch_resp.results(i).code(), 0) << batch_resp.results(i).message();
    ExpectSameRanking(batch_resp.results(i).response(), Expected(1, batch.users(i)),
                      absl::StrCat("user ", i));
  }

  pb::SimilarItemsRequest similar;
  similar.set_item_key("\xe2\x82");  // a cut-off euro sign
  similar.set_k(3);
  pb::SimilarItemsResponse similar_resp;
  {
    grpc::ClientContext ctx;
    s = stub_->SimilarItems(&ctx, similar, &similar_resp);
  }
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "item_key: expected valid UTF-8, got '\\xe2\\x82'");

  // Still serving, and the same answers as before.
  pb::RecommendRequest good = Request({"a", "b"}, 2);
  ASSERT_TRUE(Recommend(good, &resp).ok());
  ExpectSameRanking(resp, Expected(1, good), "after the bad requests");
}

TEST_F(RecommenderLoopbackTest, VersionSwitchUnderLoadFailsNothingAndMixesNothing) {
  RecommenderService::Options o;
  o.batching.max_batch_size = 8;
  StartService(o);
  constexpr int kClients = 4;
  constexpr int kMaxRequests = 3000;  // per client: a bound, not a pace
  std::atomic<bool> stop{false};
  std::atomic<int> after_switch{0};
  struct Seen {
    pb::RecommendRequest request;
    pb::RecommendResponse response;
  };
  std::vector<std::vector<Seen>> seen(kClients);
  std::vector<int> failures(kClients, 0);
  std::vector<std::string> first_failure(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < kMaxRequests && !stop.load(); ++i) {
        Seen s;
        s.request = Request(Histories()[(i + c) % Histories().size()], 2);
        grpc::Status st = Recommend(s.request, &s.response);
        if (!st.ok()) {
          if (failures[c]++ == 0) first_failure[c] = st.error_message();
          continue;
        }
        if (s.response.model().version() == 2) after_switch.fetch_add(1);
        seen[c].push_back(std::move(s));
      }
    });
  }
  // Switch while they run: publish version 2, then let the registry see it.
  Publish(2, /*with_popularity=*/true);
  registry_->Refresh();
  EXPECT_EQ(registry_->live_version(), 2);
  // Bounded: each client stops after kMaxRequests anyway.
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (after_switch.load() < 50 && absl::Now() < give_up) {
    std::this_thread::yield();
  }
  stop = true;
  for (auto& t : clients) t.join();

  int v1 = 0, v2 = 0;
  for (int c = 0; c < kClients; ++c) {
    EXPECT_EQ(failures[c], 0) << first_failure[c];
    for (const Seen& s : seen[c]) {
      const int64_t v = s.response.model().version();
      ASSERT_TRUE(v == 1 || v == 2) << v;
      (v == 1 ? v1 : v2)++;
      // Scores are the answering version's: encoder and embeddings of one run.
      ExpectSameRanking(s.response, Expected(v, s.request), absl::StrCat("version ", v));
    }
  }
  EXPECT_GT(v1, 0);
  EXPECT_GE(v2, 50);
}

}  // namespace
}  // namespace recsys
