#include "server/similarity/similarity_service.h"

#include <functional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/call_metrics.h"
#include "common/grpc_status.h"
#include "common/raw_request.h"
#include "common/status_macros.h"
#include "common/user_input.h"

namespace recsys {
namespace similarity {
namespace {

const CallMetrics& Calls() {
  static const CallMetrics* m = new CallMetrics("recsys_similarity", "Similarity");
  return *m;
}

// Runs `work`, records it under `method` and finishes `reactor` with its
// status.
void RunAndFinish(grpc::ServerUnaryReactor* reactor, const char* method,
                  const std::function<absl::Status()>& work) {
  CallRecord record(Calls(), method);
  const absl::Status status = work();
  record.Finish(status);
  reactor->Finish(ToGrpcStatus(status));
}

// Runs `work` inline.
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, const char* method,
                                const std::function<absl::Status()>& work) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  RunAndFinish(reactor, method, work);
  return reactor;
}

// Unary, with `work` on a thread of its own (seconds of work: loading a
// backbone, a Publish, an evaluation) when one of `slots` is free;
// RESOURCE_EXHAUSTED without starting anything when none is, or when no
// thread can be started.
grpc::ServerUnaryReactor* LongUnary(grpc::CallbackServerContext* ctx, const char* method,
                                    CallSlots* slots, std::function<absl::Status()> work) {
  if (!slots->TryAcquire()) {
    return Unary(ctx, method, [method, slots] {
      return absl::ResourceExhaustedError(absl::StrCat(
          method, ": at most ", slots->limit(),
          " CreateCollection, Publish and Evaluate calls run at once (--max_long_calls); this "
          "one was not started, retry later"));
    });
  }
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  try {
    std::thread([reactor, method, slots, work = std::move(work)] {
      RunAndFinish(reactor, method, [&] {
        const absl::Status status = work();
        slots->Release();
        return status;
      });
    }).detach();
  } catch (const std::system_error& e) {
    slots->Release();
    RunAndFinish(reactor, method, [&] {
      return absl::ResourceExhaustedError(
          absl::StrCat(method, ": cannot start a thread for it (", e.what(), "); retry later"));
    });
  }
  return reactor;
}

// A unary call registered raw (common/raw_request.h: text that is not UTF-8
// is INVALID_ARGUMENT naming the field), `work` run inline.
template <typename Request, typename Response>
grpc::ServerUnaryReactor* RawUnary(grpc::CallbackServerContext* ctx, const char* method,
                                   const grpc::ByteBuffer* in, grpc::ByteBuffer* out,
                                   std::function<absl::Status(const Request&, Response*)> work) {
  return Unary(ctx, method, [&] { return HandleRaw<Request, Response>(*in, out, work); });
}

// LongUnary registered raw: the request is parsed on the callback thread
// (a name that is not UTF-8 is INVALID_ARGUMENT naming the field, nothing
// started), the work runs on its own thread and its response is serialized
// there.
template <typename Request, typename Response>
grpc::ServerUnaryReactor* RawLongUnary(grpc::CallbackServerContext* ctx, const char* method,
                                       CallSlots* slots, const grpc::ByteBuffer* in,
                                       grpc::ByteBuffer* out,
                                       std::function<absl::Status(const Request&, Response*)> work) {
  auto request = std::make_shared<Request>();
  if (absl::Status parsed = ParseRequest(*in, request.get()); !parsed.ok()) {
    return Unary(ctx, method, [&] { return parsed; });
  }
  return LongUnary(ctx, method, slots, [request, out, work = std::move(work)]() -> absl::Status {
    Response response;
    RETURN_IF_ERROR(work(*request, &response));
    return SerializeResponse(response, out);
  });
}

int Entries(const v1::IndexExamplesRequest& r) { return r.examples_size(); }
int Entries(const v1::IndexImagesRequest& r) { return r.cases_size(); }

// Where the query's time went, for the benchmark (similarity_bench).
void AddTiming(grpc::CallbackServerContext* ctx, const QueryTiming& t) {
  ctx->AddTrailingMetadata("x-encode-seconds", absl::StrFormat("%.9f", t.encode_seconds));
  ctx->AddTrailingMetadata("x-search-seconds", absl::StrFormat("%.9f", t.search_seconds));
}

// A query (RawUnary): the store's answer, where its time went in the
// trailing metadata.
template <typename Request, typename Response, typename Query>
grpc::ServerUnaryReactor* TimedQuery(grpc::CallbackServerContext* ctx, const char* method,
                                     const grpc::ByteBuffer* in, grpc::ByteBuffer* out,
                                     Query query) {
  return RawUnary<Request, Response>(
      ctx, method, in, out, [ctx, query](const Request& request, Response* response) {
        QueryTiming timing;
        absl::StatusOr<Response> r = query(request, &timing);
        AddTiming(ctx, timing);
        if (!r.ok()) return r.status();
        *response = std::move(*r);
        return absl::OkStatus();
      });
}

// A client stream of batches, read raw: each message parsed (see
// RawUnary) and staged through `stage` as it arrives; the first failure
// ends the call with its status.
template <typename Request>
class IndexReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  using StageFn = std::function<absl::StatusOr<int64_t>(const Request&)>;
  IndexReactor(const char* method, grpc::ByteBuffer* response, StageFn stage)
      : method_(method), record_(Calls(), method), response_(response), stage_(std::move(stage)) {
    StartRead(&buffer_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      if (first_) {
        Finish(absl::InvalidArgumentError("collection: the stream sent no message"));
      } else {
        v1::IndexResponse response;
        response.set_staged(staged_);
        Finish(SerializeResponse(response, response_));
      }
      return;
    }
    if (absl::Status parsed = ParseRequest(buffer_, &request_); !parsed.ok()) {
      Finish(absl::InvalidArgumentError(absl::StrCat(
          "message ", messages_, " of the ", method_, " stream: ", parsed.message(),
          " (staged before it: ", messages_, " messages, ", entries_,
          " entries; nothing of it or later messages)")));
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
    ++messages_;
    entries_ += Entries(request_);
    StartRead(&buffer_);
  }
  void OnDone() override { delete this; }

 private:
  void Finish(const absl::Status& status) {
    record_.Finish(status);
    grpc::ServerReadReactor<grpc::ByteBuffer>::Finish(ToGrpcStatus(status));
  }
  const char* const method_;
  CallRecord record_;
  grpc::ByteBuffer* const response_;
  StageFn stage_;
  grpc::ByteBuffer buffer_;
  Request request_;
  int64_t messages_ = 0;  // staged so far
  int64_t entries_ = 0;
  std::string collection_;
  bool first_ = true;
  int64_t staged_ = 0;
};

}  // namespace

grpc::ServerUnaryReactor* SimilarityService::CreateCollection(grpc::CallbackServerContext* ctx,
                                                               const grpc::ByteBuffer* request,
                                                               grpc::ByteBuffer* response) {
  using Request = v1::CreateSimilarityCollectionRequest;
  using Response = v1::CreateSimilarityCollectionResponse;
  return RawLongUnary<Request, Response>(
      ctx, "CreateCollection", &long_calls_, request, response,
      [this](const Request& r, Response* out) -> absl::Status {
        ASSIGN_OR_RETURN(*out->mutable_info(), store_->CreateCollection(r.config()));
        return absl::OkStatus();
      });  // loading a backbone takes seconds
}

grpc::ServerUnaryReactor* SimilarityService::DescribeCollection(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  using Request = v1::DescribeSimilarityCollectionRequest;
  using Response = v1::DescribeSimilarityCollectionResponse;
  return RawUnary<Request, Response>(
      ctx, "DescribeCollection", request, response,
      [this](const Request& r, Response* out) -> absl::Status {
        ASSIGN_OR_RETURN(*out->mutable_info(), store_->Describe(r.collection()));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* SimilarityService::ListCollections(grpc::CallbackServerContext* ctx,
                                                              const grpc::ByteBuffer* request,
                                                              grpc::ByteBuffer* response) {
  using Request = v1::ListSimilarityCollectionsRequest;
  using Response = v1::ListSimilarityCollectionsResponse;
  return RawUnary<Request, Response>(ctx, "ListCollections", request, response,
                                     [this](const Request&, Response* out) -> absl::Status {
                                       for (v1::SimilarityCollectionInfo& info : store_->List()) {
                                         *out->add_collections() = std::move(info);
                                       }
                                       return absl::OkStatus();
                                     });
}

grpc::ServerUnaryReactor* SimilarityService::DropCollection(grpc::CallbackServerContext* ctx,
                                                             const grpc::ByteBuffer* request,
                                                             grpc::ByteBuffer* response) {
  using Request = v1::DropSimilarityCollectionRequest;
  using Response = v1::DropSimilarityCollectionResponse;
  return RawUnary<Request, Response>(
      ctx, "DropCollection", request, response,
      [this](const Request& r, Response*) { return store_->Drop(r.collection()); });
}

grpc::ServerReadReactor<grpc::ByteBuffer>* SimilarityService::IndexExamples(
    grpc::CallbackServerContext*, grpc::ByteBuffer* response) {
  return new IndexReactor<v1::IndexExamplesRequest>(
      "IndexExamples", response, [this](const v1::IndexExamplesRequest& r) {
        return store_->IndexExamples(
            r.collection(), std::vector<v1::TranslationExample>(r.examples().begin(),
                                                                r.examples().end()));
      });
}

grpc::ServerReadReactor<grpc::ByteBuffer>* SimilarityService::IndexImages(
    grpc::CallbackServerContext*, grpc::ByteBuffer* response) {
  return new IndexReactor<v1::IndexImagesRequest>(
      "IndexImages", response, [this](const v1::IndexImagesRequest& r) {
        return store_->IndexImages(
            r.collection(), std::vector<v1::ImageCase>(r.cases().begin(), r.cases().end()),
            r.has_window() ? &r.window() : nullptr);
      });
}

grpc::ServerUnaryReactor* SimilarityService::Publish(grpc::CallbackServerContext* ctx,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  using Request = v1::PublishSimilarityRequest;
  using Response = v1::PublishSimilarityResponse;
  return RawLongUnary<Request, Response>(
      ctx, "Publish", &long_calls_, request, response,
      [this](const Request& r, Response* out) -> absl::Status {
        ASSIGN_OR_RETURN(*out, store_->Publish(r.collection()));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* SimilarityService::SelectExamples(grpc::CallbackServerContext* ctx,
                                                             const grpc::ByteBuffer* raw_request,
                                                             grpc::ByteBuffer* raw_response) {
  using Request = v1::SelectExamplesRequest;
  return TimedQuery<Request, v1::SelectExamplesResponse>(
      ctx, "SelectExamples", raw_request, raw_response,
      [this](const Request& request, QueryTiming* timing) {
        return store_->SelectExamples(request, timing);
      });
}

grpc::ServerUnaryReactor* SimilarityService::SearchImages(grpc::CallbackServerContext* ctx,
                                                          const grpc::ByteBuffer* raw_request,
                                                          grpc::ByteBuffer* raw_response) {
  using Request = v1::SearchImagesRequest;
  return TimedQuery<Request, v1::SearchImagesResponse>(
      ctx, "SearchImages", raw_request, raw_response,
      [this](const Request& request, QueryTiming* timing) {
        return store_->SearchImages(request, timing);
      });
}

grpc::ServerUnaryReactor* SimilarityService::Evaluate(grpc::CallbackServerContext* ctx,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  using Request = v1::EvaluateRequest;
  using Response = v1::EvaluateResponse;
  return RawLongUnary<Request, Response>(
      ctx, "Evaluate", &long_calls_, request, response,
      [this](const Request& r, Response* out) -> absl::Status {
        ASSIGN_OR_RETURN(*out, store_->Evaluate(r));
        return absl::OkStatus();
      });
}

}  // namespace similarity
}  // namespace recsys
