#include "retrieval/client/retrieval_client.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "grpcpp/grpcpp.h"

namespace recsys {
namespace {

// The sidecar's status, with what the client was doing in front.
absl::Status Failed(const grpc::Status& s, absl::string_view what) {
  absl::Status st = FromGrpcStatus(s);
  return absl::Status(st.code(), absl::StrCat("retrieval sidecar: ", what, ": ", st.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RetrievalClient>> RetrievalClient::Create(
    const Options& options) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError("retrieval target: expected host:port or unix:PATH, got nothing");
  }
  if (options.upsert_batch_size < 1) {
    return absl::InvalidArgumentError("upsert_batch_size: must be >= 1");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(options.target,
                                           grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Retrieval::NewStub(channel);
  return std::unique_ptr<RetrievalClient>(
      new RetrievalClient(std::move(channel), std::move(stub), options));
}

RetrievalClient::RetrievalClient(v1::Retrieval::StubInterface* stub, Options options)
    : stub_(stub), options_(std::move(options)) {}

RetrievalClient::RetrievalClient(std::shared_ptr<grpc::Channel> channel,
                                 std::unique_ptr<v1::Retrieval::StubInterface> stub,
                                 Options options)
    : channel_(std::move(channel)),
      owned_(std::move(stub)),
      stub_(owned_.get()),
      options_(std::move(options)) {}

std::unique_ptr<grpc::ClientContext> RetrievalClient::Context(absl::Duration deadline) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  return ctx;
}

absl::StatusOr<v1::CollectionInfo> RetrievalClient::Describe(const std::string& collection) {
  v1::DescribeCollectionRequest req;
  req.set_collection(collection);
  v1::DescribeCollectionResponse resp;
  grpc::Status s = stub_->DescribeCollection(Context(options_.deadline).get(), req, &resp);
  if (!s.ok()) return Failed(s, absl::StrCat("describing ", collection));
  return resp.info();
}

absl::StatusOr<v1::CollectionInfo> RetrievalClient::EnsureCollection(
    const v1::CollectionConfig& config) {
  v1::CreateCollectionRequest req;
  *req.mutable_config() = config;
  v1::CreateCollectionResponse resp;
  grpc::Status s = stub_->CreateCollection(Context(options_.deadline).get(), req, &resp);
  if (s.ok()) return resp.info();
  if (s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
    return Failed(s, absl::StrCat("creating collection ", config.name()));
  }
  ASSIGN_OR_RETURN(v1::CollectionInfo info, Describe(config.name()));
  if (info.config().dimension() != config.dimension() ||
      info.config().metric() != config.metric()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "collection ", config.name(), " exists with dimension ", info.config().dimension(),
        " and metric ", v1::Metric_Name(info.config().metric()), "; wanted dimension ",
        config.dimension(), " and metric ", v1::Metric_Name(config.metric())));
  }
  return info;
}

absl::StatusOr<int64_t> RetrievalClient::UpsertAll(const std::string& collection,
                                                   int64_t count, const EntryFn& fill,
                                                   const ProgressFn& progress) {
  auto ctx = Context(options_.stream_deadline);
  v1::UpsertResponse resp;
  std::unique_ptr<grpc::ClientWriterInterface<v1::UpsertRequest>> writer =
      stub_->Upsert(ctx.get(), &resp);
  int64_t sent = 0;
  bool stream_open = true;
  while (sent < count && stream_open) {
    v1::UpsertRequest req;
    req.set_collection(collection);
    const int64_t end = std::min<int64_t>(count, sent + options_.upsert_batch_size);
    for (int64_t i = sent; i < end; ++i) fill(i, req.add_entries());
    // A false Write means the server ended the stream; Finish says why.
    stream_open = writer->Write(req);
    if (stream_open) {
      sent = end;
      if (progress) progress(sent, count);
    }
  }
  if (stream_open) writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) {
    return Failed(s, absl::StrCat("upserting into ", collection, " (", resp.upserted(),
                                  " of ", count, " entries acknowledged)"));
  }
  if (resp.upserted() != count) {
    return absl::DataLossError(absl::StrCat(
        "retrieval sidecar: upserting into ", collection, ": it acknowledged ",
        resp.upserted(), " of the ", count, " entries sent"));
  }
  return resp.upserted();
}

absl::StatusOr<int64_t> RetrievalClient::Delete(const std::string& collection,
                                                const std::vector<std::string>& keys) {
  v1::DeleteRequest req;
  req.set_collection(collection);
  for (const std::string& k : keys) req.add_keys(k);
  v1::DeleteResponse resp;
  grpc::Status s = stub_->Delete(Context(options_.deadline).get(), req, &resp);
  if (!s.ok()) return Failed(s, absl::StrCat("deleting from ", collection));
  return resp.deleted();
}

absl::StatusOr<v1::ListVersionsResponse> RetrievalClient::ListVersions(
    const std::string& collection) {
  v1::ListVersionsRequest req;
  req.set_collection(collection);
  v1::ListVersionsResponse resp;
  grpc::Status s = stub_->ListVersions(Context(options_.deadline).get(), req, &resp);
  if (!s.ok()) return Failed(s, absl::StrCat("listing versions of ", collection));
  return resp;
}

absl::StatusOr<v1::VersionInfo> RetrievalClient::PublishAndWait(const std::string& collection,
                                                                int64_t version) {
  v1::PublishRequest req;
  req.set_collection(collection);
  req.set_version(version);
  req.set_wait(true);
  v1::PublishResponse resp;
  grpc::Status s = stub_->Publish(Context(options_.stream_deadline).get(), req, &resp);
  if (!s.ok()) {
    if (s.error_code() != grpc::StatusCode::FAILED_PRECONDITION || version <= 0) {
      return Failed(s, absl::StrCat("publishing ", collection, " version ", version));
    }
    // Version numbers are shared with the model versions: a sidecar version
    // N that exists was published from model version N (a retry after a
    // crash, or a re-publish of an older model). It is made live as it is;
    // callers check its entry count against what they hold.
    ASSIGN_OR_RETURN(v1::ListVersionsResponse listed, ListVersions(collection));
    for (const v1::VersionInfo& v : listed.versions()) {
      if (v.version() != version) continue;
      if (v.state() == v1::VERSION_LIVE) return v;
      if (v.state() != v1::VERSION_READY) break;
      v1::RollbackRequest rb;
      rb.set_collection(collection);
      rb.set_version(version);
      v1::RollbackResponse rr;
      grpc::Status r = stub_->Rollback(Context(options_.deadline).get(), rb, &rr);
      if (!r.ok()) {
        return Failed(r, absl::StrCat("making existing version ", version, " of ", collection,
                                      " live"));
      }
      return rr.version();
    }
    return Failed(s, absl::StrCat("publishing ", collection, " version ", version));
  }
  if (resp.version().state() != v1::VERSION_LIVE) {
    return absl::InternalError(absl::StrCat(
        "retrieval sidecar: ", collection, " version ", resp.version().version(),
        " did not go live: ", resp.version().error()));
  }
  return resp.version();
}

absl::StatusOr<v1::SearchResponse> RetrievalClient::Search(const v1::SearchRequest& request) {
  v1::SearchResponse resp;
  grpc::Status s = stub_->Search(Context(options_.deadline).get(), request, &resp);
  if (!s.ok()) return Failed(s, absl::StrCat("searching ", request.collection()));
  return resp;
}

}  // namespace recsys
