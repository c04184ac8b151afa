// recsys.v1.Recommender over gRPC: validates a request, picks the model
// version (pinned or live), encodes the user's history with that version's
// user encoder, and asks the retrieval sidecar for the top k items of the
// item collection version with the same number, the history excluded.
//
// The sidecar call is asynchronous and inherits the caller's deadline and
// cancellation, so a slow sidecar never holds a server thread.
// Thread-safety: thread-safe; the registry and stub must outlive it.
#ifndef RECSYS_SERVER_RECOMMENDER_SERVICE_H_
#define RECSYS_SERVER_RECOMMENDER_SERVICE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "proto/recommender.grpc.pb.h"
#include "proto/retrieval.grpc.pb.h"
#include "server/model_registry.h"

namespace recsys {

class RecommenderService final : public recsys::v1::Recommender::CallbackService {
 public:
  struct Options {
    std::string model_name = "items";  // also the retrieval collection name
    int max_k = 1000;
    int max_history = 1000;            // longest accepted history
  };

  RecommenderService(Options options, const ModelRegistry* registry,
                     recsys::v1::Retrieval::StubInterface* retrieval);

  grpc::ServerUnaryReactor* Recommend(
      grpc::CallbackServerContext* context,
      const recsys::v1::RecommendRequest* request,
      recsys::v1::RecommendResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context,
      const recsys::v1::ListModelsRequest* request,
      recsys::v1::ListModelsResponse* response) override;

 private:
  const Options options_;
  const ModelRegistry* const registry_;
  recsys::v1::Retrieval::StubInterface* const retrieval_;
};

// The checks Recommend applies before any work (exposed for tests).
absl::Status ValidateRecommendRequest(const recsys::v1::RecommendRequest& request,
                                      const RecommenderService::Options& options);

// Encodes the request's history with `model` and returns the sidecar query
// for the top k of the same version's item collection. `*unknown`: history
// keys the model does not know.
absl::StatusOr<recsys::v1::SearchRequest> PlanItemSearch(
    const ServingModel& model, const recsys::v1::RecommendRequest& request,
    const std::string& collection, int* unknown);

}  // namespace recsys

#endif  // RECSYS_SERVER_RECOMMENDER_SERVICE_H_
