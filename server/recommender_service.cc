#include "server/recommender_service.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/call_metrics.h"
#include "common/grpc_status.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "common/validation.h"

namespace recsys {
namespace {

using recsys::v1::ListModelsRequest;
using recsys::v1::ListModelsResponse;
using recsys::v1::RecommendRequest;
using recsys::v1::RecommendResponse;

const CallMetrics& Calls() {
  static const CallMetrics* m = new CallMetrics("recsys_recommender", "Recommender");
  return *m;
}

Counter* UnknownItems() {
  static Counter* c = MetricsRegistry::Global()
                          .AddCounter("recsys_recommender_unknown_history_items_total",
                                      "History keys not in the model's catalog.")
                          ->WithLabels({});
  return c;
}

// One Recommend in flight: its record, reactor and sidecar call.
struct RecommendCall {
  explicit RecommendCall(grpc::ServerUnaryReactor* r) : record(Calls(), "Recommend"), reactor(r) {}
  void Finish(const absl::Status& status) {
    record.Finish(status);
    reactor->Finish(ToGrpcStatus(status));
  }
  CallRecord record;
  grpc::ServerUnaryReactor* reactor;
  std::unique_ptr<grpc::ClientContext> context;
  recsys::v1::SearchRequest search;
  recsys::v1::SearchResponse result;
};

// The sidecar's failure, saying which side failed, with the sidecar's code.
absl::Status SidecarError(const grpc::Status& status) {
  const absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(), absl::StrCat("retrieval sidecar: ", s.message()));
}

}  // namespace

absl::Status ValidateRecommendRequest(const RecommendRequest& r,
                                      const RecommenderService::Options& o) {
  RETURN_IF_ERROR(CheckRange("k", r.k(), 1, o.max_k));
  if (r.history_size() == 0) {
    return InvalidField("history", "at least one item key is required", "none");
  }
  RETURN_IF_ERROR(CheckMaxSize("history", r.history_size(), o.max_history));
  for (int i = 0; i < r.history_size(); ++i) {
    RETURN_IF_ERROR(CheckNonEmpty(absl::StrCat("history[", i, "]"), r.history(i), 1024));
  }
  if (!r.model().model().empty() && r.model().model() != o.model_name) {
    return absl::NotFoundError(absl::StrCat("model.model: this server serves ",
                                            QuoteUserInput(o.model_name), ", not ",
                                            QuoteUserInput(r.model().model())));
  }
  if (r.model().version() < 0) {
    return InvalidField("model.version", "must be >= 0 (0: live)",
                        absl::StrCat(r.model().version()));
  }
  return absl::OkStatus();
}

absl::StatusOr<recsys::v1::SearchRequest> PlanItemSearch(const ServingModel& model,
                                                         const RecommendRequest& r,
                                                         const std::string& collection,
                                                         int* unknown) {
  const std::vector<std::string> history(r.history().begin(), r.history().end());
  ASSIGN_OR_RETURN(std::vector<float> user, model.EncodeUser(history, unknown));
  recsys::v1::SearchRequest search;
  search.set_collection(collection);
  search.set_version(model.version());
  search.set_k(r.k());
  search.set_include_payload(true);
  *search.add_queries()->mutable_vector()->mutable_values() = {user.begin(), user.end()};
  if (!r.include_history()) {
    for (const std::string& key : history) search.add_exclude_keys(key);
  }
  search.mutable_payload_filter()->insert(r.payload_filter().begin(), r.payload_filter().end());
  return search;
}

RecommenderService::RecommenderService(Options options,
                                       const ModelRegistry* registry,
                                       recsys::v1::Retrieval::StubInterface* retrieval)
    : options_(std::move(options)), registry_(registry), retrieval_(retrieval) {}

grpc::ServerUnaryReactor* RecommenderService::Recommend(
    grpc::CallbackServerContext* context, const RecommendRequest* request,
    RecommendResponse* response) {
  auto call = std::make_shared<RecommendCall>(context->DefaultReactor());
  absl::Status valid = ValidateRecommendRequest(*request, options_);
  if (!valid.ok()) {
    call->Finish(valid);
    return call->reactor;
  }
  absl::StatusOr<std::shared_ptr<const ServingModel>> model =
      registry_->Get(request->model().version());
  int unknown = 0;
  absl::StatusOr<recsys::v1::SearchRequest> search =
      model.ok() ? PlanItemSearch(**model, *request, options_.model_name, &unknown)
                 : absl::StatusOr<recsys::v1::SearchRequest>(model.status());
  UnknownItems()->Increment(unknown);
  if (!search.ok()) {
    call->Finish(search.status());
    return call->reactor;
  }
  call->search = std::move(*search);
  response->mutable_model()->set_model(options_.model_name);
  response->mutable_model()->set_version((*model)->version());
  response->set_unknown_history_items(unknown);

  // Inherits the caller's deadline and cancellation.
  call->context = grpc::ClientContext::FromCallbackServerContext(*context);
  retrieval_->async()->Search(
      call->context.get(), &call->search, &call->result,
      [call, response, model = *model](grpc::Status status) {
        if (!status.ok()) {
          call->Finish(SidecarError(status));
          return;
        }
        if (call->result.results_size() == 1) {
          for (const auto& hit : call->result.results(0).hits()) {
            auto* item = response->add_items();
            item->set_key(hit.key());
            item->set_score(hit.score());
            *item->mutable_payload() = hit.payload();
          }
        }
        call->Finish(absl::OkStatus());
      });
  return call->reactor;
}

grpc::ServerUnaryReactor* RecommenderService::ListModels(
    grpc::CallbackServerContext* context, const ListModelsRequest* request,
    ListModelsResponse* response) {
  CallRecord record(Calls(), "ListModels");
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
  record.Finish(absl::OkStatus());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace recsys
