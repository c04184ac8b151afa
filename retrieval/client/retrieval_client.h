// A small, Status-returning client of the retrieval sidecar
// (recsys.v1.Retrieval): the operations the publisher, the recommendation
// server and the trainer service need, each with a deadline, gRPC errors
// converted once (common/grpc_status.h) and prefixed with what was being
// done, and counts verified.
//
//   ASSIGN_OR_RETURN(auto client, RetrievalClient::Create({"127.0.0.1:50051"}));
//   RETURN_IF_ERROR(client->EnsureCollection(config).status());
//   ASSIGN_OR_RETURN(int64_t n, client->UpsertAll("items", count, fill));
//   ASSIGN_OR_RETURN(v1::VersionInfo v, client->PublishAndWait("items", 7));
//
// Thread-safety: thread-safe (gRPC stubs are); one client may serve many
// threads. The stub (or channel) it was given must outlive it.
#ifndef RECSYS_RETRIEVAL_CLIENT_RETRIEVAL_CLIENT_H_
#define RECSYS_RETRIEVAL_CLIENT_RETRIEVAL_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/retrieval.grpc.pb.h"

namespace recsys {

class RetrievalClient {
 public:
  struct Options {
    std::string target;  // host:port, or unix:PATH for a sidecar's --unix_socket (Create only)
    absl::Duration deadline = absl::Seconds(30);     // per unary call
    absl::Duration stream_deadline = absl::Minutes(10);  // Upsert, PublishAndWait
    int upsert_batch_size = 1000;                    // entries per stream message
  };

  // Connects (lazily, as gRPC channels do) to options.target.
  static absl::StatusOr<std::unique_ptr<RetrievalClient>> Create(const Options& options);
  // Over an existing stub (shared channel, or a test's fake). Not owned.
  RetrievalClient(v1::Retrieval::StubInterface* stub, Options options);

  // Creates the collection, or checks that the existing one has the same
  // dimension and metric (FAILED_PRECONDITION naming the difference).
  absl::StatusOr<v1::CollectionInfo> EnsureCollection(const v1::CollectionConfig& config);
  absl::StatusOr<v1::CollectionInfo> Describe(const std::string& collection);

  // Fills entry i (key, vector, payload) for i in [0, count).
  using EntryFn = std::function<void(int64_t i, v1::Entry* entry)>;
  // Called after each acknowledged batch with (entries sent, count).
  using ProgressFn = std::function<void(int64_t sent, int64_t count)>;
  // Streams `count` entries in batches of options.upsert_batch_size. OK only
  // when the sidecar acknowledged exactly `count` entries; otherwise the
  // sidecar's status (or DATA_LOSS when it acknowledged fewer than sent),
  // with how many were acknowledged.
  absl::StatusOr<int64_t> UpsertAll(const std::string& collection, int64_t count,
                                    const EntryFn& fill, const ProgressFn& progress = nullptr);
  absl::StatusOr<int64_t> Delete(const std::string& collection,
                                 const std::vector<std::string>& keys);

  // Publishes the staging set as `version` (0: next) and waits until it is
  // live. When the sidecar already holds `version` (version numbers are the
  // model versions': a retry after a crash, or a re-publish of an older
  // model), that version is made live as it is (Rollback) and returned:
  // callers compare its entry_count with what they upserted. INTERNAL with
  // the sidecar's reason when the build failed.
  absl::StatusOr<v1::VersionInfo> PublishAndWait(const std::string& collection,
                                                 int64_t version);
  absl::StatusOr<v1::ListVersionsResponse> ListVersions(const std::string& collection);
  absl::StatusOr<v1::SearchResponse> Search(const v1::SearchRequest& request);

  v1::Retrieval::StubInterface* stub() const { return stub_; }

 private:
  RetrievalClient(std::shared_ptr<grpc::Channel> channel,
                  std::unique_ptr<v1::Retrieval::StubInterface> stub, Options options);
  std::unique_ptr<grpc::ClientContext> Context(absl::Duration deadline) const;

  std::shared_ptr<grpc::Channel> channel_;                 // Create only
  std::unique_ptr<v1::Retrieval::StubInterface> owned_;    // Create only
  v1::Retrieval::StubInterface* const stub_;
  const Options options_;
};

}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_CLIENT_RETRIEVAL_CLIENT_H_
