#include "server/similarity/similarity_service.h"

#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/call_metrics.h"
#include "common/grpc_status.h"
#include "common/user_input.h"

namespace recsys {
namespace similarity {
namespace {

const CallMetrics& Calls() {
  static const CallMetrics* m = new CallMetrics("recsys_similarity", "Similarity");
  return *m;
}

// Runs `work` (inline, or on a thread of its own) and finishes the call with
// its status, recorded under `method`.
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, const char* method,
                                std::function<absl::Status()> work, bool own_thread = false) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto run = [reactor, method, work = std::move(work)] {
    CallRecord record(Calls(), method);
    const absl::Status status = work();
    record.Finish(status);
    reactor->Finish(ToGrpcStatus(status));
  };
  if (own_thread) {
    std::thread(std::move(run)).detach();
  } else {
    run();
  }
  return reactor;
}

// Where the query's time went, for the benchmark (similarity_bench).
void AddTiming(grpc::CallbackServerContext* ctx, const QueryTiming& t) {
  ctx->AddTrailingMetadata("x-encode-seconds", absl::StrFormat("%.9f", t.encode_seconds));
  ctx->AddTrailingMetadata("x-search-seconds", absl::StrFormat("%.9f", t.search_seconds));
}

// A client stream of batches: each message staged through `stage` as it
// arrives; the first failure ends the call with its status.
template <typename Request>
class IndexReactor final : public grpc::ServerReadReactor<Request> {
 public:
  using StageFn = std::function<absl::StatusOr<int64_t>(const Request&)>;
  IndexReactor(const char* method, v1::IndexResponse* response, StageFn stage)
      : record_(Calls(), method), response_(response), stage_(std::move(stage)) {
    this->StartRead(&request_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      if (first_) {
        Finish(absl::InvalidArgumentError("collection: the stream sent no message"));
      } else {
        response_->set_staged(staged_);
        Finish(absl::OkStatus());
      }
      return;
    }
    if (first_) {
      collection_ = request_.collection();
      first_ = false;
    } else if (!request_.collection().empty() && request_.collection() != collection_) {
      Finish(absl::InvalidArgumentError(
          absl::StrCat("collection: must not change within a stream (first ",
                       QuoteUserInput(collection_), ", then ",
                       QuoteUserInput(request_.collection()), ")")));
      return;
    }
    request_.set_collection(collection_);
    absl::StatusOr<int64_t> staged = stage_(request_);
    if (!staged.ok()) {
      Finish(staged.status());
      return;
    }
    staged_ = *staged;
    this->StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  void Finish(const absl::Status& status) {
    record_.Finish(status);
    grpc::ServerReadReactor<Request>::Finish(ToGrpcStatus(status));
  }
  CallRecord record_;
  v1::IndexResponse* response_;
  StageFn stage_;
  Request request_;
  std::string collection_;
  bool first_ = true;
  int64_t staged_ = 0;
};

}  // namespace

grpc::ServerUnaryReactor* SimilarityService::CreateCollection(
    grpc::CallbackServerContext* ctx, const v1::CreateSimilarityCollectionRequest* request,
    v1::CreateSimilarityCollectionResponse* response) {
  return Unary(ctx, "CreateCollection", [this, request, response]() -> absl::Status {
    absl::StatusOr<v1::SimilarityCollectionInfo> info = store_->CreateCollection(request->config());
    if (!info.ok()) return info.status();
    *response->mutable_info() = std::move(*info);
    return absl::OkStatus();
  }, /*own_thread=*/true);  // loading a backbone takes seconds
}

grpc::ServerUnaryReactor* SimilarityService::DescribeCollection(
    grpc::CallbackServerContext* ctx, const v1::DescribeSimilarityCollectionRequest* request,
    v1::DescribeSimilarityCollectionResponse* response) {
  return Unary(ctx, "DescribeCollection", [this, request, response]() -> absl::Status {
    absl::StatusOr<v1::SimilarityCollectionInfo> info = store_->Describe(request->collection());
    if (!info.ok()) return info.status();
    *response->mutable_info() = std::move(*info);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SimilarityService::ListCollections(
    grpc::CallbackServerContext* ctx, const v1::ListSimilarityCollectionsRequest*,
    v1::ListSimilarityCollectionsResponse* response) {
  return Unary(ctx, "ListCollections", [this, response]() -> absl::Status {
    for (v1::SimilarityCollectionInfo& info : store_->List()) {
      *response->add_collections() = std::move(info);
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SimilarityService::DropCollection(
    grpc::CallbackServerContext* ctx, const v1::DropSimilarityCollectionRequest* request,
    v1::DropSimilarityCollectionResponse*) {
  return Unary(ctx, "DropCollection",
               [this, request]() { return store_->Drop(request->collection()); });
}

grpc::ServerReadReactor<v1::IndexExamplesRequest>* SimilarityService::IndexExamples(
    grpc::CallbackServerContext*, v1::IndexResponse* response) {
  return new IndexReactor<v1::IndexExamplesRequest>(
      "IndexExamples", response, [this](const v1::IndexExamplesRequest& r) {
        return store_->IndexExamples(
            r.collection(), std::vector<v1::TranslationExample>(r.examples().begin(),
                                                                r.examples().end()));
      });
}

grpc::ServerReadReactor<v1::IndexImagesRequest>* SimilarityService::IndexImages(
    grpc::CallbackServerContext*, v1::IndexResponse* response) {
  return new IndexReactor<v1::IndexImagesRequest>(
      "IndexImages", response, [this](const v1::IndexImagesRequest& r) {
        return store_->IndexImages(
            r.collection(), std::vector<v1::ImageCase>(r.cases().begin(), r.cases().end()),
            r.has_window() ? &r.window() : nullptr);
      });
}

grpc::ServerUnaryReactor* SimilarityService::Publish(grpc::CallbackServerContext* ctx,
                                                     const v1::PublishSimilarityRequest* request,
                                                     v1::PublishSimilarityResponse* response) {
  return Unary(ctx, "Publish", [this, request, response]() -> absl::Status {
    absl::StatusOr<v1::PublishSimilarityResponse> published =
        store_->Publish(request->collection());
    if (!published.ok()) return published.status();
    *response = std::move(*published);
    return absl::OkStatus();
  }, /*own_thread=*/true);
}

grpc::ServerUnaryReactor* SimilarityService::SelectExamples(
    grpc::CallbackServerContext* ctx, const v1::SelectExamplesRequest* request,
    v1::SelectExamplesResponse* response) {
  return Unary(ctx, "SelectExamples", [this, ctx, request, response]() -> absl::Status {
    QueryTiming timing;
    absl::StatusOr<v1::SelectExamplesResponse> r = store_->SelectExamples(*request, &timing);
    AddTiming(ctx, timing);
    if (!r.ok()) return r.status();
    *response = std::move(*r);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SimilarityService::SearchImages(grpc::CallbackServerContext* ctx,
                                                          const v1::SearchImagesRequest* request,
                                                          v1::SearchImagesResponse* response) {
  return Unary(ctx, "SearchImages", [this, ctx, request, response]() -> absl::Status {
    QueryTiming timing;
    absl::StatusOr<v1::SearchImagesResponse> r = store_->SearchImages(*request, &timing);
    AddTiming(ctx, timing);
    if (!r.ok()) return r.status();
    *response = std::move(*r);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SimilarityService::Evaluate(grpc::CallbackServerContext* ctx,
                                                      const v1::EvaluateRequest* request,
                                                      v1::EvaluateResponse* response) {
  return Unary(ctx, "Evaluate", [this, request, response]() -> absl::Status {
    absl::StatusOr<v1::EvaluateResponse> r = store_->Evaluate(*request);
    if (!r.ok()) return r.status();
    *response = std::move(*r);
    return absl::OkStatus();
  }, /*own_thread=*/true);
}

}  // namespace similarity
}  // namespace recsys
