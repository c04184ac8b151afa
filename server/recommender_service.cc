#include "server/recommender_service.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/metrics.h"

namespace recsys {
namespace {

using recsys::v1::ListModelsRequest;
using recsys::v1::ListModelsResponse;
using recsys::v1::RecommendRequest;
using recsys::v1::RecommendResponse;

struct ServiceMetrics {
  MetricFamily<Counter>* requests;
  MetricFamily<Histogram>* latency;
  Counter* unknown_items;

  static const ServiceMetrics& Get() {
    static const ServiceMetrics m = [] {
      auto& r = MetricsRegistry::Global();
      ServiceMetrics x;
      x.requests = r.AddCounter("recsys_recommender_requests_total",
                                "Recommender requests by method and status code.",
                                {"method", "code"});
      x.latency = r.AddHistogram("recsys_recommender_request_seconds",
                                 "Recommender request latency.", {"method"},
                                 LatencyBuckets());
      x.unknown_items = r.AddCounter("recsys_recommender_unknown_history_items_total",
                                     "History keys not in the model's catalog.")
                            ->WithLabels({});
      return x;
    }();
    return m;
  }
};

void Record(const char* method, const grpc::Status& status, absl::Time start) {
  const ServiceMetrics& m = ServiceMetrics::Get();
  static const char* kCodes[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
      "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int code = static_cast<int>(status.error_code());
  m.requests->WithLabels({method, code >= 0 && code <= 16 ? kCodes[code] : "UNKNOWN"})
      ->Increment();
  m.latency->WithLabels({method})->ObserveDuration(absl::Now() - start);
}

// Owns the sidecar call of one Recommend.
struct SearchCall {
  std::unique_ptr<grpc::ClientContext> context;
  recsys::v1::SearchRequest request;
  recsys::v1::SearchResponse response;
};

}  // namespace

RecommenderService::RecommenderService(Options options,
                                       const ModelRegistry* registry,
                                       recsys::v1::Retrieval::StubInterface* retrieval)
    : options_(std::move(options)), registry_(registry), retrieval_(retrieval) {}

grpc::ServerUnaryReactor* RecommenderService::Recommend(
    grpc::CallbackServerContext* context, const RecommendRequest* request,
    RecommendResponse* response) {
  const absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto finish = [reactor, start](const grpc::Status& status) {
    Record("Recommend", status, start);
    reactor->Finish(status);
  };

  if (request->k() < 1 || request->k() > options_.max_k) {
    finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("k: must be in [1, ", options_.max_k, "], got ",
                                     request->k())));
    return reactor;
  }
  if (request->history_size() == 0) {
    finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "history: at least one item key is required"));
    return reactor;
  }
  if (request->history_size() > options_.max_history) {
    finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("history: at most ", options_.max_history,
                                     " keys, got ", request->history_size())));
    return reactor;
  }
  if (!request->model().model().empty() &&
      request->model().model() != options_.model_name) {
    finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("model.model: this server serves \"",
                                     options_.model_name, "\", not \"",
                                     request->model().model(), "\"")));
    return reactor;
  }
  if (request->model().version() < 0) {
    finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "model.version: must be >= 0 (0: live)"));
    return reactor;
  }
  absl::StatusOr<std::shared_ptr<const ServingModel>> model =
      registry_->Get(request->model().version());
  if (!model.ok()) {
    finish(ToGrpcStatus(model.status()));
    return reactor;
  }
  const std::vector<std::string> history(request->history().begin(),
                                         request->history().end());
  int unknown = 0;
  absl::StatusOr<std::vector<float>> user = (*model)->EncodeUser(history, &unknown);
  if (!user.ok()) {
    finish(ToGrpcStatus(user.status()));
    return reactor;
  }
  ServiceMetrics::Get().unknown_items->Increment(unknown);

  auto call = std::make_shared<SearchCall>();
  // Inherits the caller's deadline and cancellation.
  call->context = grpc::ClientContext::FromCallbackServerContext(*context);
  call->request.set_collection(options_.model_name);
  call->request.set_version((*model)->version());
  call->request.set_k(request->k());
  call->request.set_include_payload(true);
  *call->request.add_queries()->mutable_vector()->mutable_values() = {
      user->begin(), user->end()};
  if (!request->include_history()) {
    for (const std::string& key : history) call->request.add_exclude_keys(key);
  }
  for (const auto& [field, value] : request->payload_filter()) {
    (*call->request.mutable_payload_filter())[field] = value;
  }
  response->mutable_model()->set_model(options_.model_name);
  response->mutable_model()->set_version((*model)->version());
  response->set_unknown_history_items(unknown);

  retrieval_->async()->Search(
      call->context.get(), &call->request, &call->response,
      [call, response, finish, model = *model](grpc::Status status) {
        if (!status.ok()) {
          // Say which side failed; keep the sidecar's code.
          finish(grpc::Status(status.error_code(),
                              absl::StrCat("retrieval sidecar: ",
                                           status.error_message())));
          return;
        }
        if (call->response.results_size() == 1) {
          for (const auto& hit : call->response.results(0).hits()) {
            auto* item = response->add_items();
            item->set_key(hit.key());
            item->set_score(hit.score());
            *item->mutable_payload() = hit.payload();
          }
        }
        finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerUnaryReactor* RecommenderService::ListModels(
    grpc::CallbackServerContext* context, const ListModelsRequest* request,
    ListModelsResponse* response) {
  const absl::Time start = absl::Now();
  for (const ModelRegistry::Entry& e : registry_->List()) {
    const ServingModelInfo& info = e.model->info();
    auto* m = response->add_models();
    m->mutable_model()->set_model(options_.model_name);
    m->mutable_model()->set_version(info.version);
    m->set_live(e.live);
    m->set_num_items(info.num_items);
    m->set_embedding_dim(static_cast<int32_t>(info.embedding_dim));
    m->set_model_kind(info.model_kind);
    m->set_created_time(info.created_at);
    m->set_metrics_json(info.metrics_json);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Record("ListModels", grpc::Status::OK, start);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace recsys
