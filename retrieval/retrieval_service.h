// RetrievalService: the recsys.v1.Retrieval gRPC service (callback API).
// Transport only: it parses requests into the core's types, calls the
// CollectionStore / Collection / SearchBatcher, converts the status once
// (ToGrpcStatus) and records metrics. Single-query searches go through the
// SearchBatcher and finish from its thread without blocking a gRPC thread;
// Publish with wait=true finishes from the build thread.
//
// Until SetStore() hands over the restored state, every call answers
// UNAVAILABLE (and the server's health says NOT_SERVING).
//
// Metrics (MetricsRegistry::Global()):
//   recsys_retrieval_requests_total{method,collection,code}
//   recsys_retrieval_request_seconds{method,collection}
//   recsys_retrieval_search_batch_size{collection}
//   recsys_retrieval_live_entries / _staging_entries / _memory_bytes /
//   _loaded_versions {collection}, recsys_retrieval_version_entries
//   {collection,version}, recsys_retrieval_collection_state{collection}
//   (0 ok, 1 degraded, 2 failed to restore): refreshed on scrape.
//
// Thread-safety: all methods thread-safe. The service must outlive the
// gRPC server it is registered with.
#ifndef RECSYS_RETRIEVAL_RETRIEVAL_SERVICE_H_
#define RECSYS_RETRIEVAL_RETRIEVAL_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/retrieval.grpc.pb.h"
#include "retrieval/collection_store.h"
#include "retrieval/search_batcher.h"

namespace recsys {
namespace retrieval {

// Every method is registered raw (ByteBuffer in, ByteBuffer out) so that
// the service, not gRPC, parses the requests: a message with invalid UTF-8
// (a key, a payload value, a collection name) gets INVALID_ARGUMENT naming
// the field (for Upsert the message and the entry, see upsert_wire.proto)
// instead of being dropped or refused as UNIMPLEMENTED with no message.
namespace internal {
namespace v1 = recsys::v1;
// Every method registered raw (the nesting of gRPC's per-method mixins).
using RawRetrievalService = v1::Retrieval::WithRawCallbackMethod_CreateCollection<
    v1::Retrieval::WithRawCallbackMethod_DescribeCollection<
        v1::Retrieval::WithRawCallbackMethod_ListCollections<
            v1::Retrieval::WithRawCallbackMethod_DropCollection<
                v1::Retrieval::WithRawCallbackMethod_Upsert<
                    v1::Retrieval::WithRawCallbackMethod_Delete<
                        v1::Retrieval::WithRawCallbackMethod_Get<
                            v1::Retrieval::WithRawCallbackMethod_Publish<
                                v1::Retrieval::WithRawCallbackMethod_Rollback<
                                    v1::Retrieval::WithRawCallbackMethod_ListVersions<
                                        v1::Retrieval::WithRawCallbackMethod_Search<
                                            v1::Retrieval::CallbackService>>>>>>>>>>>;
}  // namespace internal

class RetrievalService final : public internal::RawRetrievalService {
 public:
  struct Options {
    SearchBatcher::Options batching;
    int max_queries_per_request = 1024;
    int max_exclude_keys = 10000;
    // Process-wide FAISS setting (faiss::distance_compute_blas_threshold):
    // exact searches of at least this many queries use BLAS. FAISS's default
    // (20) leaves small dynamic batches on the per-query scan, which reads
    // every vector once per query; 0 keeps FAISS's default.
    int faiss_blas_threshold = 2;
  };

  static absl::StatusOr<std::unique_ptr<RetrievalService>> Create(
      const Options& options);
  ~RetrievalService() override;

  // Hands over the restored state; call once.
  void SetStore(std::unique_ptr<CollectionStore> store);

  grpc::ServerUnaryReactor* CreateCollection(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* DescribeCollection(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ListCollections(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* DropCollection(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* Upsert(
      grpc::CallbackServerContext* ctx, grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx,
                                   const grpc::ByteBuffer* req,
                                   grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx,
                                const grpc::ByteBuffer* req,
                                grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* Rollback(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ListVersions(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp) override;
  // Raw: a SearchRequest in, a SearchResponse out.
  grpc::ServerUnaryReactor* Search(grpc::CallbackServerContext* ctx,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;

 private:
  class UpsertReactor;
  explicit RetrievalService(const Options& options) : options_(options) {}
  // The store, or UNAVAILABLE while state is being restored.
  absl::StatusOr<CollectionStore*> store() const;
  absl::StatusOr<std::shared_ptr<Collection>> Lookup(
      const std::string& name) const;
  void RefreshGauges() const;
  // Collections DEGRADED or FAILED (for the health name
  // "recsys.v1.Retrieval/collections"); empty when all are OK.
 public:
  std::vector<std::string> UnhealthyCollections() const;

 private:

  const Options options_;
  std::unique_ptr<SearchBatcher> batcher_;
  std::unique_ptr<CollectionStore> owned_store_;
  std::atomic<CollectionStore*> store_{nullptr};
};

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_RETRIEVAL_SERVICE_H_
