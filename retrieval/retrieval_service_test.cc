// The Retrieval service against a real gRPC server on loopback.
#include "retrieval/retrieval_service.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/metrics.h"
#include "common/server.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/health.grpc.pb.h"
#include "retrieval/test_util.h"

namespace recsys {
namespace retrieval {
namespace {

namespace pb = ::recsys::v1;
using ::testing::AllOf;
using ::testing::HasSubstr;
constexpr int kDim = 16;

class RetrievalServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(service_, RetrievalService::Create({}));
    ServerOptions o;
    o.metrics_port = -1;
    o.health_service_names = {"recsys.v1.Retrieval"};
    ASSERT_OK_AND_ASSIGN(server_, ServiceServer::Create(o, {service_.get()}));
    channel_ = grpc::CreateChannel(server_->grpc_target(),
                                   grpc::InsecureChannelCredentials());
    stub_ = pb::Retrieval::NewStub(channel_);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    server_.reset();
  }

  void Restore() {
    CollectionStore::Options o;
    o.data_dir = FreshTestDir("svc");
    ASSERT_OK_AND_ASSIGN(auto store, CollectionStore::Open(o));
    service_->SetStore(std::move(store));
    server_->SetServing(true);
  }

  grpc::Status Create(const std::string& name, const std::string& factory = "Flat",
                      pb::Metric metric = pb::METRIC_INNER_PRODUCT, int dim = kDim) {
    pb::CreateCollectionRequest req;
    req.mutable_config()->set_name(name);
    req.mutable_config()->set_dimension(dim);
    req.mutable_config()->set_metric(metric);
    req.mutable_config()->set_index_factory(factory);
    pb::CreateCollectionResponse resp;
    grpc::ClientContext ctx;
    return stub_->CreateCollection(&ctx, req, &resp);
  }

  // Streams `batches` of entries; returns the final status.
  grpc::Status Upsert(const std::string& name,
                      const std::vector<std::vector<Entry>>& batches,
                      pb::UpsertResponse* resp) {
    grpc::ClientContext ctx;
    auto writer = stub_->Upsert(&ctx, resp);
    for (const auto& batch : batches) {
      pb::UpsertRequest req;
      req.set_collection(name);
      for (const Entry& e : batch) {
        pb::Entry* pe = req.add_entries();
        pe->set_key(e.key);
        pe->mutable_vector()->mutable_values()->Add(e.vector.begin(), e.vector.end());
        for (const auto& kv : e.payload) (*pe->mutable_payload())[kv.first] = kv.second;
      }
      if (!writer->Write(req)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  grpc::Status Publish(const std::string& name, int64_t version,
                       pb::PublishResponse* resp) {
    pb::PublishRequest req;
    req.set_collection(name);
    req.set_version(version);
    req.set_wait(true);
    grpc::ClientContext ctx;
    return stub_->Publish(&ctx, req, resp);
  }

  grpc::Status Search(const pb::SearchRequest& req, pb::SearchResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->Search(&ctx, req, resp);
  }

  static pb::SearchRequest VectorQuery(const std::string& name,
                                       const std::vector<float>& v, int k) {
    pb::SearchRequest req;
    req.set_collection(name);
    req.set_k(k);
    req.add_queries()->mutable_vector()->mutable_values()->Add(v.begin(), v.end());
    return req;
  }

  std::unique_ptr<RetrievalService> service_;
  std::unique_ptr<ServiceServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Retrieval::Stub> stub_;
};

TEST_F(RetrievalServiceTest, NotServingAndUnavailableUntilRestored) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest hreq;
  hreq.set_service("recsys.v1.Retrieval");
  grpc::health::v1::HealthCheckResponse hresp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(health->Check(&ctx, hreq, &hresp).ok());
    EXPECT_EQ(hresp.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  }
  EXPECT_EQ(Create("items").error_code(), grpc::StatusCode::UNAVAILABLE);
  Restore();
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(health->Check(&ctx, hreq, &hresp).ok());
    EXPECT_EQ(hresp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  EXPECT_TRUE(Create("items").ok());
}

TEST_F(RetrievalServiceTest, EndToEndUpsertPublishSearchGet) {
  Restore();
  ASSERT_TRUE(Create("items", "Flat", pb::METRIC_COSINE).ok());
  std::vector<Entry> all = MakeEntries(0, 1000, kDim, 1);
  std::vector<std::vector<Entry>> batches = {
      std::vector<Entry>(all.begin(), all.begin() + 400),
      std::vector<Entry>(all.begin() + 400, all.end())};
  pb::UpsertResponse up;
  ASSERT_TRUE(Upsert("items", batches, &up).ok());
  EXPECT_EQ(up.upserted(), 1000);
  EXPECT_EQ(up.batches(), 2);
  pb::PublishResponse pub;
  grpc::Status ps = Publish("items", 7, &pub);
  ASSERT_TRUE(ps.ok()) << ps.error_message();
  EXPECT_EQ(pub.version().version(), 7);
  EXPECT_EQ(pub.version().state(), pb::VERSION_LIVE);
  EXPECT_EQ(pub.version().entry_count(), 1000);

  // A stored vector scaled by 3 finds itself first (cosine).
  std::vector<float> q = all[123].vector;
  for (float& x : q) x *= 3;
  pb::SearchRequest req = VectorQuery("items", q, 5);
  req.set_include_payload(true);
  pb::SearchResponse resp;
  ASSERT_TRUE(Search(req, &resp).ok());
  EXPECT_EQ(resp.version(), 7);
  ASSERT_EQ(resp.results_size(), 1);
  ASSERT_EQ(resp.results(0).hits_size(), 5);
  EXPECT_EQ(resp.results(0).hits(0).key(), "key123");
  EXPECT_NEAR(resp.results(0).hits(0).score(), 1.0, 1e-4);
  EXPECT_EQ(resp.results(0).hits(0).payload().at("parity"), "odd");

  // Exclusion (a user's history) and payload filter.
  req.add_exclude_keys("key123");
  (*req.mutable_payload_filter())["parity"] = "even";
  ASSERT_TRUE(Search(req, &resp).ok());
  ASSERT_EQ(resp.results(0).hits_size(), 5);
  for (const auto& h : resp.results(0).hits()) {
    EXPECT_NE(h.key(), "key123");
    EXPECT_EQ(h.payload().at("parity"), "even");
  }

  // Per-query exclusion: one batch, two users with the same vector; only
  // the first has key123 (and an unknown key) in its history.
  {
    pb::SearchRequest two = VectorQuery("items", q, 3);
    *two.add_queries() = two.queries(0);
    two.mutable_queries(0)->add_exclude_keys("key123");
    two.mutable_queries(0)->add_exclude_keys("not-in-the-collection");
    pb::SearchResponse both;
    ASSERT_TRUE(Search(two, &both).ok());
    ASSERT_EQ(both.results_size(), 2);
    ASSERT_EQ(both.results(0).hits_size(), 3);
    ASSERT_EQ(both.results(1).hits_size(), 3);
    EXPECT_EQ(both.results(1).hits(0).key(), "key123");
    for (const auto& h : both.results(0).hits()) EXPECT_NE(h.key(), "key123");
    // The first user's hits are the second's without key123, in order.
    EXPECT_EQ(both.results(0).hits(0).key(), both.results(1).hits(1).key());
    EXPECT_EQ(both.results(0).hits(1).key(), both.results(1).hits(2).key());
  }

  // "More like this" by key, in a client batch with a vector query.
  pb::SearchRequest by_key;
  by_key.set_collection("items");
  by_key.set_k(3);
  by_key.add_queries()->set_key("key5");
  by_key.add_queries()->mutable_vector()->mutable_values()->Add(
      all[9].vector.begin(), all[9].vector.end());
  by_key.mutable_params()->set_ef_search(32);
  ASSERT_TRUE(Search(by_key, &resp).ok());
  ASSERT_EQ(resp.results_size(), 2);
  for (const auto& h : resp.results(0).hits()) EXPECT_NE(h.key(), "key5");
  EXPECT_EQ(resp.results(1).hits(0).key(), "key9");

  pb::GetRequest get;
  get.set_collection("items");
  get.add_keys("key1");
  get.add_keys("nope");
  get.set_include_vectors(true);
  pb::GetResponse got;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Get(&ctx, get, &got).ok());
  ASSERT_EQ(got.entries_size(), 1);
  EXPECT_EQ(got.entries(0).vector().values_size(), kDim);
  EXPECT_EQ(got.missing_keys(0), "nope");

  // Staged read: a delete not yet published is visible there only.
  {
    pb::DeleteRequest del;
    del.set_collection("items");
    del.add_keys("key1");
    pb::DeleteResponse dresp;
    grpc::ClientContext dctx;
    ASSERT_TRUE(stub_->Delete(&dctx, del, &dresp).ok());
    get.set_staged(true);
    pb::GetResponse staged;
    grpc::ClientContext sctx;
    ASSERT_TRUE(stub_->Get(&sctx, get, &staged).ok());
    EXPECT_EQ(staged.entries_size(), 0);
    EXPECT_EQ(staged.missing_keys_size(), 2);
    EXPECT_EQ(staged.version(), 0);
    get.set_version(1);
    grpc::ClientContext bctx;
    grpc::Status bad = stub_->Get(&bctx, get, &staged);
    EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(bad.error_message(), HasSubstr("version"));
    get.set_staged(false);
    get.set_version(0);
    grpc::ClientContext lctx;
    ASSERT_TRUE(stub_->Get(&lctx, get, &got).ok());
    EXPECT_EQ(got.entries_size(), 1);  // the live version still has key1
  }

  const std::string metrics = MetricsRegistry::Global().Render();
  EXPECT_THAT(metrics, HasSubstr("recsys_retrieval_requests_total{"));
  EXPECT_THAT(metrics, HasSubstr("recsys_retrieval_search_batch_size_bucket{"));
  EXPECT_THAT(metrics, HasSubstr("recsys_retrieval_live_entries{collection=\"items\"} 1000"));
  EXPECT_THAT(metrics, HasSubstr("recsys_retrieval_memory_bytes{collection=\"items\"}"));
}

TEST_F(RetrievalServiceTest, BadInputGetsPreciseCodes) {
  Restore();
  EXPECT_EQ(Create("x", "NotAnIndex").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Create("x", "Flat", pb::METRIC_UNSPECIFIED).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Create("items").ok());
  EXPECT_EQ(Create("items").error_code(), grpc::StatusCode::ALREADY_EXISTS);

  // A bad batch is refused whole, naming the entry and field.
  std::vector<Entry> batch = MakeEntries(0, 10, kDim, 1);
  batch[7].vector.pop_back();
  pb::UpsertResponse up;
  grpc::Status s = Upsert("items", {batch}, &up);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("entries[7].vector: expected dimension 16"));
  batch = MakeEntries(0, 3, kDim, 1);
  batch[2].key = "key0";
  s = Upsert("items", {batch}, &up);
  EXPECT_THAT(s.error_message(), HasSubstr("duplicate key"));
  EXPECT_EQ(Upsert("nope", {MakeEntries(0, 1, kDim, 1)}, &up).error_code(),
            grpc::StatusCode::NOT_FOUND);

  pb::SearchResponse resp;
  std::vector<float> q(kDim, 0.1f);
  // Nothing published yet.
  EXPECT_EQ(Search(VectorQuery("items", q, 5), &resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(Upsert("items", {MakeEntries(0, 20, kDim, 1)}, &up).ok());
  pb::PublishResponse pub;
  ASSERT_TRUE(Publish("items", 0, &pub).ok());
  s = Search(VectorQuery("items", q, 0), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("k: expected 1..1000, got 0"));
  EXPECT_EQ(Search(VectorQuery("items", q, 1001), &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  std::vector<float> nan = q;
  nan[3] = std::nanf("");
  s = Search(VectorQuery("items", nan, 5), &resp);
  EXPECT_THAT(s.error_message(), HasSubstr("queries[0].vector[3]"));
  s = Search(VectorQuery("items", std::vector<float>(3, 1.f), 5), &resp);
  EXPECT_THAT(s.error_message(), HasSubstr("expected dimension 16"));
  {
    // 10,000 exclude keys in all (the default bound): 9,000 on the request,
    // 1,000 on the first query, 1 more on the second is one too many.
    pb::SearchRequest many = VectorQuery("items", q, 5);
    *many.add_queries() = many.queries(0);
    for (int i = 0; i < 9000; ++i) many.add_exclude_keys(absl::StrCat("r", i));
    for (int i = 0; i < 1000; ++i) many.mutable_queries(0)->add_exclude_keys(absl::StrCat("q", i));
    ASSERT_TRUE(Search(many, &resp).ok());
    many.mutable_queries(1)->add_exclude_keys("one-more");
    s = Search(many, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(),
                HasSubstr("queries[1].exclude_keys: expected at most 10000 exclude keys in the "
                          "request and its queries together, got 10001"));
  }
  pb::SearchRequest pinned = VectorQuery("items", q, 5);
  pinned.set_version(9);
  EXPECT_EQ(Search(pinned, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Search(VectorQuery("nope", q, 5), &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  pb::SearchRequest by_key;
  by_key.set_collection("items");
  by_key.set_k(3);
  by_key.add_queries()->set_key("missing");
  EXPECT_EQ(Search(by_key, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Publish("items", 1, &pub).error_code(), grpc::StatusCode::OK);
  EXPECT_EQ(pub.version().version(), 1);  // a retry: the same version back
  {
    pb::DeleteRequest del;
    del.set_collection("items");
    del.add_keys("key3");
    pb::DeleteResponse dr;
    grpc::ClientContext dctx;
    ASSERT_TRUE(stub_->Delete(&dctx, del, &dr).ok());
  }
  EXPECT_EQ(Publish("items", 1, &pub).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  pb::RollbackRequest rb;
  rb.set_collection("items");
  rb.set_version(5);
  pb::RollbackResponse rbr;
  grpc::ClientContext ctx;
  EXPECT_EQ(stub_->Rollback(&ctx, rb, &rbr).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(RetrievalServiceTest, PinnedVersionsRollbackAndConcurrentSearches) {
  Restore();
  ASSERT_TRUE(Create("items").ok());
  pb::UpsertResponse up;
  pb::PublishResponse pub;
  ASSERT_TRUE(Upsert("items", {MakeEntries(0, 500, kDim, 1)}, &up).ok());
  ASSERT_TRUE(Publish("items", 0, &pub).ok());
  pb::DeleteRequest del;
  del.set_collection("items");
  del.add_keys("key0");
  pb::DeleteResponse dresp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Delete(&ctx, del, &dresp).ok());
    EXPECT_EQ(dresp.deleted(), 1);
  }
  ASSERT_TRUE(Publish("items", 0, &pub).ok());
  const std::vector<float> q = MakeEntries(0, 1, kDim, 1)[0].vector;  // key0's

  // 16 threads search concurrently: live (v2) never returns key0, pinned v1
  // always does.
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        pb::SearchRequest req = VectorQuery("items", q, 3);
        if (t % 2 == 0) req.set_version(1);
        pb::SearchResponse resp;
        if (!Search(req, &resp).ok() || resp.results(0).hits_size() != 3) {
          ++wrong;
          continue;
        }
        const bool has_key0 = resp.results(0).hits(0).key() == "key0";
        if (has_key0 != (t % 2 == 0)) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong, 0);

  pb::RollbackRequest rb;
  rb.set_collection("items");
  rb.set_version(1);
  pb::RollbackResponse rbr;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Rollback(&ctx, rb, &rbr).ok());
  }
  pb::SearchResponse resp;
  ASSERT_TRUE(Search(VectorQuery("items", q, 1), &resp).ok());
  EXPECT_EQ(resp.version(), 1);
  EXPECT_EQ(resp.results(0).hits(0).key(), "key0");

  pb::ListVersionsRequest lv;
  lv.set_collection("items");
  pb::ListVersionsResponse lvr;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ListVersions(&ctx, lv, &lvr).ok());
  }
  EXPECT_EQ(lvr.live_version(), 1);
  ASSERT_EQ(lvr.versions_size(), 2);
  EXPECT_EQ(lvr.versions(0).state(), pb::VERSION_LIVE);
  EXPECT_EQ(lvr.versions(0).entry_count(), 500);
  EXPECT_EQ(lvr.versions(1).state(), pb::VERSION_READY);
  EXPECT_EQ(lvr.versions(1).entry_count(), 499);

  EXPECT_THAT(MetricsRegistry::Global().Render(),
              HasSubstr("recsys_retrieval_version_entries{collection=\"items\",version=\"1\"} 500"));
  pb::DropCollectionRequest drop;
  drop.set_collection("items");
  pb::DropCollectionResponse dr;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->DropCollection(&ctx, drop, &dr).ok());
  }
  EXPECT_EQ(Search(VectorQuery("items", q, 1), &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // The dropped collection's gauges leave /metrics.
  const std::string metrics = MetricsRegistry::Global().Render();
  EXPECT_THAT(metrics, ::testing::Not(HasSubstr(
                           "recsys_retrieval_live_entries{collection=\"items\"}")));
  EXPECT_THAT(metrics, ::testing::Not(HasSubstr(
                           "recsys_retrieval_version_entries{collection=\"items\"")));
}


// --- Hardening (issue 11) ---

Entry OneEntry(const std::string& key, int seed) {
  Entry e = MakeEntries(0, 1, kDim, seed)[0];
  e.key = key;
  return e;
}

// An Upsert stream whose second message holds invalid UTF-8 (a proto3
// string) used to end OK with that message and every later one dropped.
// Now it fails naming the message, entry and field, and what was applied.
TEST_F(RetrievalServiceTest, UpsertStreamWithInvalidUtf8FailsAndSaysWhatWasApplied) {
  Restore();
  ASSERT_TRUE(Create("items").ok());
  for (int bad_field = 0; bad_field < 3; ++bad_field) {
    std::vector<std::vector<Entry>> batches = {
        MakeEntries(0, 5, kDim, 1), {OneEntry("ok", 2), OneEntry("also-ok", 3)},
        MakeEntries(100, 5, kDim, 4)};
    Entry& bad = batches[1][1];
    const char* expected = "";
    if (bad_field == 0) {
      bad.key = "bad\xff" "key";
      expected = "entries[1].key: expected valid UTF-8";
    } else if (bad_field == 1) {
      bad.payload = {{"title", "caf\xc3"}};
      expected = "entries[1].payload['title']: expected valid UTF-8";
    } else {
      bad.payload = {{"ti\xfftle", "x"}};
      expected = "entries[1].payload field";
    }
    pb::UpsertResponse resp;
    grpc::Status st = Upsert("items", batches, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad_field;
    EXPECT_THAT(st.error_message(),
                AllOf(HasSubstr("message 1 of the Upsert stream"), HasSubstr(expected),
                      HasSubstr("1 messages with 5 entries were applied")))
        << st.error_message();
    // Nothing of the bad message or the later ones was applied.
    pb::GetRequest get;
    get.set_collection("items");
    get.set_staged(true);
    for (const char* k : {"ok", "key100", "key0"}) get.add_keys(k);
    pb::GetResponse got;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Get(&ctx, get, &got).ok());
    ASSERT_EQ(got.entries_size(), 1) << bad_field;
    EXPECT_EQ(got.entries(0).key(), "key0");
  }
  // A clean stream reports exactly what it applied.
  pb::UpsertResponse resp;
  ASSERT_TRUE(Upsert("items", {MakeEntries(0, 3, kDim, 1), MakeEntries(3, 4, kDim, 1)},
                     &resp).ok());
  EXPECT_EQ(resp.upserted(), 7);
  EXPECT_EQ(resp.batches(), 2);
}

// What a client sees for a unary request gRPC cannot parse: the callback
// API drops it before any handler runs (documented in the README).
TEST_F(RetrievalServiceTest, UnparseableUnaryRequestIsRefusedBeforeTheHandler) {
  Restore();
  ASSERT_TRUE(Create("items").ok());
  pb::SearchResponse resp;
  grpc::Status st = Search(VectorQuery("it\xffms", std::vector<float>(kDim, 1), 1), &resp);
  // gRPC 1.51's callback server answers a request it cannot deserialize
  // with UNIMPLEMENTED and an empty message (measured here, before Search
  // was registered raw; Publish still is typed).
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "collection: expected valid UTF-8, got 'it\\xffms'");
  pb::SearchRequest keys = VectorQuery("items", std::vector<float>(kDim, 1), 1);
  keys.add_queries()->set_key("ok");
  keys.mutable_queries(1)->add_exclude_keys("k\xe9y");
  st = Search(keys, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "queries[1].exclude_keys[0]: expected valid UTF-8, got 'k\\xe9y'");
}

// Every admin call is read raw as well: a collection name that is not
// UTF-8 gets INVALID_ARGUMENT naming the field (it was UNIMPLEMENTED with
// an empty message), and nothing is created, published or dropped.
TEST_F(RetrievalServiceTest, AdminCallsWithInvalidUtf8NamesAreInvalidArgument) {
  Restore();
  ASSERT_TRUE(Create("items").ok());
  const std::string bad = "it\xffms";
  const std::string says = "expected valid UTF-8, got 'it\\xffms'";
  auto expect_invalid = [&](const grpc::Status& st, const std::string& field) {
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_EQ(st.error_message(), field + ": " + says);
  };
  {
    pb::CreateCollectionRequest req;
    req.mutable_config()->set_name(bad);
    req.mutable_config()->set_dimension(kDim);
    req.mutable_config()->set_index_factory("Flat");
    pb::CreateCollectionResponse resp;
    grpc::ClientContext ctx;
    expect_invalid(stub_->CreateCollection(&ctx, req, &resp), "config.name");
  }
  {
    pb::DescribeCollectionRequest req;
    req.set_collection(bad);
    pb::DescribeCollectionResponse resp;
    grpc::ClientContext ctx;
    expect_invalid(stub_->DescribeCollection(&ctx, req, &resp), "collection");
  }
  {
    pb::PublishRequest req;
    req.set_collection(bad);
    req.set_wait(true);
    pb::PublishResponse resp;
    grpc::ClientContext ctx;
    expect_invalid(stub_->Publish(&ctx, req, &resp), "collection");
  }
  {
    pb::RollbackRequest req;
    req.set_collection(bad);
    pb::RollbackResponse resp;
    grpc::ClientContext ctx;
    expect_invalid(stub_->Rollback(&ctx, req, &resp), "collection");
  }
  {
    pb::ListVersionsRequest req;
    req.set_collection(bad);
    pb::ListVersionsResponse resp;
    grpc::ClientContext ctx;
    expect_invalid(stub_->ListVersions(&ctx, req, &resp), "collection");
  }
  {
    pb::DropCollectionRequest req;
    req.set_collection(bad);
    pb::DropCollectionResponse resp;
    grpc::ClientContext ctx;
    expect_invalid(stub_->DropCollection(&ctx, req, &resp), "collection");
  }
  // The raw calls still answer well-formed requests: the collection is
  // there, alone, and publishes (with and without wait) through raw bytes.
  pb::ListCollectionsResponse list;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ListCollections(&ctx, pb::ListCollectionsRequest(), &list).ok());
  }
  ASSERT_EQ(list.collections_size(), 1);
  EXPECT_EQ(list.collections(0).config().name(), "items");
  int64_t first = 0;
  for (bool wait : {true, false}) {
    pb::UpsertResponse up;
    ASSERT_TRUE(Upsert("items", {MakeEntries(first, 3, kDim, 1)}, &up).ok());
    first += 3;
    pb::PublishRequest req;
    req.set_collection("items");
    req.set_wait(wait);
    pb::PublishResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = stub_->Publish(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_GE(resp.version().version(), 1) << "wait " << wait;
  }
}

// Delete and Get carry callers' keys and are read raw: invalid UTF-8 is
// INVALID_ARGUMENT, and nothing is deleted.
TEST_F(RetrievalServiceTest, DeleteAndGetWithInvalidUtf8KeysAreInvalidArgument) {
  Restore();
  ASSERT_TRUE(Create("items").ok());
  pb::UpsertResponse up;
  ASSERT_TRUE(Upsert("items", {MakeEntries(0, 3, kDim, 1)}, &up).ok());
  pb::DeleteRequest del;
  del.set_collection("items");
  del.add_keys("key0");
  del.add_keys("bad\xfe");
  pb::DeleteResponse dr;
  grpc::Status st;
  {
    grpc::ClientContext ctx;
    st = stub_->Delete(&ctx, del, &dr);
  }
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "keys[1]: expected valid UTF-8, got 'bad\\xfe'");
  pb::GetRequest get;
  get.set_collection("items");
  get.set_staged(true);
  get.add_keys("key0");
  pb::GetResponse got;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Get(&ctx, get, &got).ok());
  }
  EXPECT_EQ(got.entries_size(), 1);  // key0 was not deleted
  get.add_keys("\xc3");
  {
    grpc::ClientContext ctx;
    st = stub_->Get(&ctx, get, &got);
  }
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "keys[1]: expected valid UTF-8, got '\\xc3'");
  del.clear_keys();
  del.add_keys("key0");
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Delete(&ctx, del, &dr).ok());
  }
  EXPECT_EQ(dr.deleted(), 1);
}

// Error messages quote user input truncated, so a 10 KB name comes back
// as the precise code, not RESOURCE_EXHAUSTED for oversized metadata.
TEST_F(RetrievalServiceTest, HugeUserInputIsQuotedTruncatedInErrors) {
  Restore();
  ASSERT_TRUE(Create("items").ok());
  const std::string huge(10240, 'a');
  pb::SearchResponse resp;
  grpc::Status st = Search(VectorQuery(huge, std::vector<float>(kDim, 1), 1), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(st.error_message(), HasSubstr("...' (10240 bytes)"));
  EXPECT_LT(st.error_message().size(), 300u);
  EXPECT_EQ(Create(huge).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status bad_factory = Create("x", std::string(5000, 'Q'));
  EXPECT_EQ(bad_factory.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LT(bad_factory.error_message().size(), 600u);
  pb::SearchRequest by_key;
  by_key.set_collection("items");
  by_key.set_k(1);
  by_key.add_queries()->set_key(std::string(8000, 'k'));
  pb::UpsertResponse up;
  ASSERT_TRUE(Upsert("items", {MakeEntries(0, 3, kDim, 1)}, &up).ok());
  pb::PublishResponse pub;
  ASSERT_TRUE(Publish("items", 0, &pub).ok());
  st = Search(by_key, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LT(st.error_message().size(), 300u);
  pb::UpsertResponse up2;
  std::vector<Entry> dup = {OneEntry(std::string(400, 'd'), 1), OneEntry(std::string(400, 'd'), 2)};
  st = Upsert("items", {dup}, &up2);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LT(st.error_message().size(), 400u);
}

// Factory strings FAISS accepts but that crash or exhaust it later are
// refused before anything is persisted; the server keeps serving.
TEST_F(RetrievalServiceTest, CrashingFactoriesAreRefusedAndNothingIsPersisted) {
  Restore();
  for (const char* f : {"IVF0,Flat", "HNSW0", "PQ16", "PQ3", "IVF8,PQ8x9",
                        "IVF100000,Flat", "HNSW-1", "PQ8x12", "IVF16,PQ0"}) {
    grpc::Status st = Create("bad", f, pb::METRIC_L2, 8);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << f;
    EXPECT_THAT(st.error_message(), HasSubstr("config.index_factory")) << f;
  }
  pb::ListCollectionsResponse list;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->ListCollections(&ctx, {}, &list).ok());
  EXPECT_EQ(list.collections_size(), 0);
  // A supported PQ publishes and searches (IndexPQ used to answer INTERNAL).
  ASSERT_TRUE(Create("pq", "PQ4", pb::METRIC_L2, 8).ok());
  pb::UpsertResponse up;
  ASSERT_TRUE(Upsert("pq", {MakeEntries(0, 300, 8, 1)}, &up).ok());
  pb::PublishResponse pub;
  ASSERT_TRUE(Publish("pq", 0, &pub).ok());
  pb::SearchResponse resp;
  ASSERT_TRUE(Search(VectorQuery("pq", MakeEntries(0, 1, 8, 1)[0].vector, 3), &resp).ok());
  EXPECT_EQ(resp.results(0).hits_size(), 3);
}

// A collection that cannot be restored is listed as FAILED with the
// reason, not hidden; Create says it exists; Drop removes it.
TEST_F(RetrievalServiceTest, ACollectionThatFailsToRestoreIsListedAsFailed) {
  const std::string dir = FreshTestDir("svc_failed");
  {
    CollectionStore::Options o;
    o.data_dir = dir;
    ASSERT_OK_AND_ASSIGN(auto store, CollectionStore::Open(o));
    ASSERT_OK(store->Create(TestConfig("items", kDim)).status());
    ASSERT_OK(store->Create(TestConfig("other", kDim)).status());
  }
  ASSERT_OK_AND_ASSIGN(std::string json, ReadFileToString(dir + "/items/collection.json"));
  json[json.find("16")] = '7';  // the dimension, edited
  ASSERT_OK(WriteFileAtomically(dir + "/items/collection.json", json));
  CollectionStore::Options o;
  o.data_dir = dir;
  ASSERT_OK_AND_ASSIGN(auto store, CollectionStore::Open(o));
  service_->SetStore(std::move(store));
  server_->SetServing(true);
  EXPECT_EQ(service_->UnhealthyCollections(), std::vector<std::string>{"items"});

  pb::ListCollectionsResponse list;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ListCollections(&ctx, {}, &list).ok());
  }
  ASSERT_EQ(list.collections_size(), 2);
  const pb::CollectionInfo* items = nullptr;
  for (const auto& c : list.collections()) {
    if (c.config().name() == "items") items = &c;
    else EXPECT_EQ(c.state(), pb::COLLECTION_OK);
  }
  ASSERT_NE(items, nullptr);
  EXPECT_EQ(items->state(), pb::COLLECTION_FAILED);
  EXPECT_THAT(items->error(), HasSubstr("fails its checksum"));
  pb::DescribeCollectionRequest dreq;
  dreq.set_collection("items");
  pb::DescribeCollectionResponse dresp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->DescribeCollection(&ctx, dreq, &dresp).ok());
  }
  EXPECT_EQ(dresp.info().state(), pb::COLLECTION_FAILED);
  pb::SearchResponse resp;
  grpc::Status st = Search(VectorQuery("items", std::vector<float>(kDim, 1), 1), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("checksum"));
  EXPECT_EQ(Create("items").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  const std::string text = MetricsRegistry::Global().Render();
  EXPECT_THAT(text, HasSubstr("recsys_retrieval_collection_state{collection=\"items\"} 2"));
  pb::DropCollectionRequest drop;
  drop.set_collection("items");
  pb::DropCollectionResponse dr;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->DropCollection(&ctx, drop, &dr).ok());
  }
  EXPECT_TRUE(Create("items").ok());
  EXPECT_TRUE(service_->UnhealthyCollections().empty());
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
