// The recsys.v1.Similarity gRPC service: each handler checks the request's
// shape, calls SimilarityStore, converts the status once and records the
// call's metrics. No logic here.
//
// Index* streams stage each message as a whole (a refused message stages
// nothing; earlier messages of the stream stay staged, as the proto says).
// Publish and Evaluate run on a thread of their own so that a long fit or
// evaluation does not hold one of gRPC's callback threads.
//
// SelectExamples and SearchImages report where their time went in trailing
// metadata (x-encode-seconds, x-search-seconds: decoding + embedding, and
// the sidecar calls).
//
// Thread-safety: thread-safe. The store must outlive the service.
#ifndef RECSYS_SERVER_SIMILARITY_SIMILARITY_SERVICE_H_
#define RECSYS_SERVER_SIMILARITY_SIMILARITY_SERVICE_H_

#include "proto/similarity.grpc.pb.h"
#include "server/similarity/call_slots.h"
#include "server/similarity/similarity_store.h"

namespace recsys {
namespace similarity {

// Every method is registered raw (common/raw_request.h): text that is not
// UTF-8 (a source sentence, a collection name) gets INVALID_ARGUMENT naming
// the message and field. Typed, gRPC 1.51 ended an index stream at such a
// message as if the client had finished it: OK, with that message and
// every later one silently dropped; a unary call got UNIMPLEMENTED with no
// message.
using RawSimilarityService = v1::Similarity::WithRawCallbackMethod_CreateCollection<
    v1::Similarity::WithRawCallbackMethod_DescribeCollection<
        v1::Similarity::WithRawCallbackMethod_ListCollections<
            v1::Similarity::WithRawCallbackMethod_DropCollection<
                v1::Similarity::WithRawCallbackMethod_IndexExamples<
                    v1::Similarity::WithRawCallbackMethod_IndexImages<
                        v1::Similarity::WithRawCallbackMethod_Publish<
                            v1::Similarity::WithRawCallbackMethod_SelectExamples<
                                v1::Similarity::WithRawCallbackMethod_SearchImages<
                                    v1::Similarity::WithRawCallbackMethod_Evaluate<
                                        v1::Similarity::CallbackService>>>>>>>>>>;

class SimilarityService final : public RawSimilarityService {
 public:
  // At most `max_long_calls` CreateCollection, Publish and Evaluate calls
  // (each on a thread of its own) run at once; more are RESOURCE_EXHAUSTED.
  explicit SimilarityService(SimilarityStore* store, int max_long_calls = 4)
      : store_(store), long_calls_(max_long_calls) {}

  grpc::ServerUnaryReactor* CreateCollection(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* DescribeCollection(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListCollections(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* DropCollection(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  // Raw: IndexExamplesRequest / IndexImagesRequest messages in, an
  // IndexResponse out.
  grpc::ServerReadReactor<grpc::ByteBuffer>* IndexExamples(grpc::CallbackServerContext* ctx,
                                                           grpc::ByteBuffer* response) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* IndexImages(grpc::CallbackServerContext* ctx,
                                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  // Raw: a SelectExamplesRequest / SearchImagesRequest in, its response out.
  grpc::ServerUnaryReactor* SelectExamples(grpc::CallbackServerContext* ctx,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* SearchImages(grpc::CallbackServerContext* ctx,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Evaluate(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;

 private:
  SimilarityStore* const store_;
  CallSlots long_calls_;
};

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_SIMILARITY_SERVICE_H_
