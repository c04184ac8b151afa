// recsys.v1.Recommender over gRPC. A request is answered by exactly one model
// version: its user encoder and the item collection version with the same
// number in the retrieval sidecar (pinned, or the registry's live version,
// taken once at the start of the request and held to its end).
//
// Recommend / RecommendBatch, per user: validate -> resolve the history to
// the version's rows -> known items: queue for the EncodeBatcher (one
// batched forward per version, on its workers, never on a gRPC thread) ->
// the encoded batch's sidecar query; no known item (cold start): the
// version's most popular items (fallback POPULAR), payloads read from the
// sidecar.
//
// Sidecar queries of one encoded batch are grouped by payload filter; a group
// of several users goes as one multi-query Search, each query with its own
// user's known history as its exclude_keys (split where the group's
// exclusions would pass the sidecar's limit); a user alone gets its own
// Search. A single-user Search inherits the caller's deadline and
// cancellation; a group's Search carries the latest of its callers'
// deadlines, so one caller giving up does not fail the others.
//
// Recommend, RecommendBatch and SimilarItems carry callers' keys and are
// registered raw (common/raw_request.h): a key that is not UTF-8 gets
// INVALID_ARGUMENT naming it ("history[2]: expected valid UTF-8, got ..."),
// in a batch for that user only, instead of gRPC's bare UNIMPLEMENTED.
//
// SimilarItems: a by-key Search of the same version's collection (the item
// itself left out by the sidecar).
//
// Metrics (common/metrics.h): recsys_recommender_stage_seconds{stage=queue|
// encode|retrieve|total}, recsys_recommender_encode_batch_size,
// recsys_recommender_fallbacks_total{fallback}, the unknown-items counter,
// recsys_recommender_served_model_version, requests by method and code
// (common/call_metrics.h) and batch users by code.
//
// Thread-safety: thread-safe; the registry and stub must outlive it.
#ifndef RECSYS_SERVER_RECOMMENDER_SERVICE_H_
#define RECSYS_SERVER_RECOMMENDER_SERVICE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proto/recommender.grpc.pb.h"
#include "proto/retrieval.grpc.pb.h"
#include "server/encode_batcher.h"
#include "server/model_registry.h"

namespace recsys {

class RecommenderService final
    : public recsys::v1::Recommender::WithRawCallbackMethod_Recommend<
          recsys::v1::Recommender::WithRawCallbackMethod_RecommendBatch<
              recsys::v1::Recommender::WithRawCallbackMethod_SimilarItems<
                  recsys::v1::Recommender::CallbackService>>> {
 public:
  struct Options {
    std::string model_name = "items";  // also the retrieval collection name
    int max_k = 1000;
    int max_history = 1000;            // longer histories are refused
    int max_batch_users = 64;          // users per RecommendBatch
    int max_sidecar_exclude_keys = 10000;  // the sidecar's limit per Search
    EncodeBatcher::Options batching;
  };

  RecommenderService(Options options, const ModelRegistry* registry,
                     recsys::v1::Retrieval::StubInterface* retrieval);
  ~RecommenderService() override;

  // Raw: a RecommendRequest, RecommendBatchRequest, SimilarItemsRequest in,
  // the matching response out.
  grpc::ServerUnaryReactor* Recommend(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RecommendBatch(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* SimilarItems(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const recsys::v1::ListModelsRequest* request,
                                       recsys::v1::ListModelsResponse* response) override;

  // Forwards the encoder has run (tests: coalescing).
  int64_t encoder_forwards() const { return batcher_->forwards(); }

  struct UserCall;

 private:
  struct SearchGroup;
  void Answer(std::shared_ptr<UserCall> call);
  void ColdStart(std::shared_ptr<UserCall> call);
  void OnEncoded(const std::shared_ptr<const ServingModel>& model,
                 std::vector<std::shared_ptr<EncodeTask>> batch);
  void SearchAlone(std::shared_ptr<UserCall> call);
  void SearchTogether(std::vector<std::shared_ptr<UserCall>> calls);

  const Options options_;
  const ModelRegistry* const registry_;
  recsys::v1::Retrieval::StubInterface* const retrieval_;
  // Last: destroyed first, so its draining workers still see the rest.
  std::unique_ptr<EncodeBatcher> batcher_;
};

// The checks Recommend applies to one user before any work (exposed for
// tests). An empty history is valid (cold start).
absl::Status ValidateRecommendRequest(const recsys::v1::RecommendRequest& request,
                                      const RecommenderService::Options& options);
absl::Status ValidateSimilarItemsRequest(const recsys::v1::SimilarItemsRequest& request,
                                         const RecommenderService::Options& options);

}  // namespace recsys

#endif  // RECSYS_SERVER_RECOMMENDER_SERVICE_H_
