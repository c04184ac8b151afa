#include "retrieval/retrieval_service.h"

#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/call_metrics.h"
#include "common/grpc_status.h"
#include "common/metrics.h"
#include "common/raw_request.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "faiss/utils/distances.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "retrieval/upsert_wire.pb.h"

namespace recsys {
namespace retrieval {
namespace {

namespace pb = ::recsys::v1;
namespace wire = ::recsys::retrieval::wire;

struct Metrics {
  MetricFamily<Histogram>* batch_size;
  MetricFamily<Gauge>* live_entries;
  MetricFamily<Gauge>* staging_entries;
  MetricFamily<Gauge>* memory_bytes;
  MetricFamily<Gauge>* loaded_versions;
  MetricFamily<Gauge>* version_entries;
  MetricFamily<Gauge>* collection_state;
};

const Metrics& M() {
  static const Metrics* m = [] {
    auto& r = MetricsRegistry::Global();
    auto* out = new Metrics;
    out->batch_size = r.AddHistogram(
        "recsys_retrieval_search_batch_size",
        "Queries per FAISS call (dynamic batching).", {"collection"},
        SizeBuckets());
    out->live_entries = r.AddGauge("recsys_retrieval_live_entries",
                                   "Entries in the live version.", {"collection"});
    out->staging_entries = r.AddGauge(
        "recsys_retrieval_staging_entries",
        "Entries the next publish would hold.", {"collection"});
    out->memory_bytes = r.AddGauge(
        "recsys_retrieval_memory_bytes",
        "Bytes held by the loaded versions of a collection.", {"collection"});
    out->loaded_versions = r.AddGauge("recsys_retrieval_loaded_versions",
                                      "Versions loaded.", {"collection"});
    out->version_entries = r.AddGauge("recsys_retrieval_version_entries",
                                      "Entries per loaded version.",
                                      {"collection", "version"});
    out->collection_state = r.AddGauge(
        "recsys_retrieval_collection_state",
        "0: ok, 1: degraded (corrupt staging log, writes refused), 2: failed "
        "to restore.",
        {"collection"});
    return out;
  }();
  return *m;
}

// Services alive in this process, for the one scrape hook.
absl::Mutex g_services_mu;
std::set<const RetrievalService*>& Services() {
  static auto* s = new std::set<const RetrievalService*>;
  return *s;
}

// Per-call metrics: recsys_retrieval_requests_total{method, collection, code}
// and recsys_retrieval_request_seconds{method, collection}. `collection` is
// set only once the collection is known to exist (bounded cardinality).
const CallMetrics& Calls() {
  static const CallMetrics* m = new CallMetrics("recsys_retrieval", "Retrieval", {"collection"});
  return *m;
}
constexpr size_t kCollectionLabel = 0;

// Runs `fn` (returning absl::Status) and finishes the call with it.
template <typename Fn>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx,
                                const char* method, Fn fn) {
  CallRecord record(Calls(), method);
  absl::Status s = fn(record);
  record.Finish(s);
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

// Unary calls registered raw: the request is parsed here, so one gRPC
// cannot parse (invalid UTF-8 in a key) is INVALID_ARGUMENT naming the
// field (common/raw_request.h) instead of gRPC's bare UNIMPLEMENTED. `fn(const Req&, Resp*, CallRecord&)` runs
// synchronously; the response is serialized only on OK.
template <typename Req, typename Resp, typename Fn>
grpc::ServerUnaryReactor* RawUnary(grpc::CallbackServerContext* ctx,
                                   const grpc::ByteBuffer* in,
                                   grpc::ByteBuffer* out, const char* method,
                                   Fn fn) {
  return Unary(ctx, method, [&](CallRecord& rec) {
    return HandleRaw<Req, Resp>(*in, out,
                                [&](const Req& req, Resp* resp) { return fn(req, resp, rec); });
  });
}

pb::Metric ToProto(Metric m) {
  switch (m) {
    case Metric::kInnerProduct:
      return pb::METRIC_INNER_PRODUCT;
    case Metric::kL2:
      return pb::METRIC_L2;
    case Metric::kCosine:
      return pb::METRIC_COSINE;
  }
  return pb::METRIC_UNSPECIFIED;
}

absl::StatusOr<CollectionConfig> FromProto(const pb::CollectionConfig& p) {
  CollectionConfig c;
  c.name = p.name();
  c.dimension = p.dimension();
  switch (p.metric()) {
    case pb::METRIC_INNER_PRODUCT:
      c.metric = Metric::kInnerProduct;
      break;
    case pb::METRIC_L2:
      c.metric = Metric::kL2;
      break;
    case pb::METRIC_COSINE:
      c.metric = Metric::kCosine;
      break;
    default:
      return absl::InvalidArgumentError(
          "config.metric: expected METRIC_INNER_PRODUCT, METRIC_L2 or "
          "METRIC_COSINE");
  }
  c.index_factory = p.index_factory();
  c.max_training_vectors = p.max_training_vectors();
  c.flat_fallback_when_untrainable = p.flat_fallback_when_untrainable();
  c.build_params.insert(p.build_params().begin(), p.build_params().end());
  return c;
}

void ToProto(const CollectionConfig& c, pb::CollectionConfig* p) {
  p->set_name(c.name);
  p->set_dimension(c.dimension);
  p->set_metric(ToProto(c.metric));
  p->set_index_factory(c.index_factory);
  p->set_max_training_vectors(c.max_training_vectors);
  p->set_flat_fallback_when_untrainable(c.flat_fallback_when_untrainable);
  p->mutable_build_params()->insert(c.build_params.begin(), c.build_params.end());
}

void ToProto(const VersionStatus& v, pb::VersionInfo* p) {
  p->set_version(v.version);
  switch (v.state) {
    case VersionState::kBuilding:
      p->set_state(pb::VERSION_BUILDING);
      break;
    case VersionState::kReady:
      p->set_state(pb::VERSION_READY);
      break;
    case VersionState::kLive:
      p->set_state(pb::VERSION_LIVE);
      break;
    case VersionState::kFailed:
      p->set_state(pb::VERSION_FAILED);
      break;
  }
  p->set_entry_count(v.entries);
  p->set_memory_bytes(v.memory_bytes);
  p->set_index_factory(v.index_description);
  if (v.created != absl::InfinitePast()) {
    p->set_created_time(absl::FormatTime(absl::RFC3339_sec, v.created,
                                         absl::UTCTimeZone()));
  }
  if (v.state == VersionState::kBuilding) {
    pb::Progress* pr = p->mutable_progress();
    pr->set_fraction(v.progress.fraction);
    pr->set_rate(v.progress.rate);
    pr->set_rate_unit(v.progress.unit);
    pr->set_eta_seconds(v.progress.eta_seconds);
    pr->set_done(v.progress.done);
    pr->set_total(v.progress.total);
    pr->set_phase(v.progress.phase);
  }
  p->set_error(v.error);
}

void ToProto(const CollectionStatus& s, pb::CollectionInfo* p) {
  p->set_state(s.error.empty() ? pb::COLLECTION_OK : pb::COLLECTION_DEGRADED);
  p->set_error(s.error);
  ToProto(s.config, p->mutable_config());
  p->set_live_version(s.live_version);
  p->set_staging_entry_count(s.staging_entries);
  p->set_staging_pending_changes(s.pending_changes);
  for (const VersionStatus& v : s.versions) ToProto(v, p->add_versions());
}

void FailedToProto(const std::string& name, const std::string& error,
                   pb::CollectionInfo* p) {
  p->set_state(pb::COLLECTION_FAILED);
  p->set_error(error);
  p->mutable_config()->set_name(name);
}

Payload FromProto(const google::protobuf::Map<std::string, std::string>& m) {
  Payload p(m.begin(), m.end());
  NormalizePayload(p);
  return p;
}

void PayloadToProto(const CollectionVersion& v, int64_t id,
                    google::protobuf::Map<std::string, std::string>* out) {
  v.ForEachPayloadField(id, [out](absl::string_view field,
                                  absl::string_view value) {
    (*out)[std::string(field)] = std::string(value);
  });
}

void FillHit(const CollectionVersion& v, const SearchHit& h,
             bool include_payload, pb::SearchHit* out) {
  out->set_key(std::string(v.key(h.id)));
  out->set_score(h.score);
  if (include_payload) PayloadToProto(v, h.id, out->mutable_payload());
}

// One entry of a Get response.
void FillEntry(absl::string_view key, absl::Span<const float> vector,
               bool include_vector, pb::Entry* e) {
  e->set_key(std::string(key));
  if (include_vector) {
    e->mutable_vector()->mutable_values()->Add(vector.begin(), vector.end());
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<RetrievalService>> RetrievalService::Create(
    const Options& options) {
  auto s = std::unique_ptr<RetrievalService>(new RetrievalService(options));
  ASSIGN_OR_RETURN(s->batcher_, SearchBatcher::Create(options.batching));
  if (options.faiss_blas_threshold < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "faiss_blas_threshold: expected >= 0, got ",
        options.faiss_blas_threshold));
  }
  if (options.faiss_blas_threshold > 0) {
    faiss::distance_compute_blas_threshold = options.faiss_blas_threshold;
  }
  M();
  static bool hook_added = [] {
    MetricsRegistry::Global().AddCollectHook([] {
      absl::MutexLock l(&g_services_mu);
      for (const RetrievalService* s : Services()) s->RefreshGauges();
    });
    return true;
  }();
  (void)hook_added;
  absl::MutexLock l(&g_services_mu);
  Services().insert(s.get());
  return s;
}

RetrievalService::~RetrievalService() {
  absl::MutexLock l(&g_services_mu);
  Services().erase(this);
}

void RetrievalService::SetStore(std::unique_ptr<CollectionStore> store) {
  owned_store_ = std::move(store);
  store_.store(owned_store_.get());
}

absl::StatusOr<CollectionStore*> RetrievalService::store() const {
  CollectionStore* s = store_.load();
  if (s == nullptr) {
    return absl::UnavailableError(
        "the retrieval sidecar is still restoring its collections");
  }
  return s;
}

absl::StatusOr<std::shared_ptr<Collection>> RetrievalService::Lookup(
    const std::string& name) const {
  ASSIGN_OR_RETURN(CollectionStore * s, store());
  return s->Get(name);
}

void RetrievalService::RefreshGauges() const {
  CollectionStore* s = store_.load();
  if (s == nullptr) return;
  // Series of collections and versions that no longer exist are removed, so
  // /metrics neither reports stale values nor grows with every version.
  std::set<std::vector<std::string>> collections, versions;
  for (const auto& c : s->List()) {
    const CollectionStatus st = c->Status();
    const std::string& name = st.config.name;
    collections.insert({name});
    int64_t memory = 0, live = 0, loaded = 0;
    for (const VersionStatus& v : st.versions) {
      if (v.state != VersionState::kReady && v.state != VersionState::kLive) {
        continue;
      }
      memory += v.memory_bytes;
      ++loaded;
      if (v.state == VersionState::kLive) live = v.entries;
      std::vector<std::string> labels = {name, absl::StrCat(v.version)};
      M().version_entries->WithLabels(labels)->Set(static_cast<double>(v.entries));
      versions.insert(std::move(labels));
    }
    M().live_entries->WithLabels({name})->Set(static_cast<double>(live));
    M().staging_entries->WithLabels({name})->Set(
        static_cast<double>(st.staging_entries));
    M().memory_bytes->WithLabels({name})->Set(static_cast<double>(memory));
    M().loaded_versions->WithLabels({name})->Set(static_cast<double>(loaded));
    M().collection_state->WithLabels({name})->Set(st.error.empty() ? 0 : 1);
  }
  for (const auto& [name, error] : s->Failed()) {
    collections.insert({name});
    M().collection_state->WithLabels({name})->Set(2);
  }
  for (const auto& [labels, unused] : M().version_entries->Children()) {
    if (!versions.count(labels)) M().version_entries->Remove(labels);
  }
  for (auto* family : {M().live_entries, M().staging_entries, M().memory_bytes,
                       M().loaded_versions, M().collection_state}) {
    for (const auto& [labels, unused] : family->Children()) {
      if (!collections.count(labels)) family->Remove(labels);
    }
  }
}

grpc::ServerUnaryReactor* RetrievalService::CreateCollection(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return RawUnary<pb::CreateCollectionRequest, pb::CreateCollectionResponse>(
      ctx, raw_req, raw_resp, "CreateCollection",
      [&](const pb::CreateCollectionRequest& req, pb::CreateCollectionResponse* resp,
          CallRecord& rec) -> absl::Status {
    ASSIGN_OR_RETURN(CollectionStore * s, store());
    ASSIGN_OR_RETURN(CollectionConfig config, FromProto(req.config()));
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, s->Create(config));
    rec.SetLabel(kCollectionLabel, config.name);
    ToProto(c->Status(), resp->mutable_info());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetrievalService::DescribeCollection(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return RawUnary<pb::DescribeCollectionRequest, pb::DescribeCollectionResponse>(
      ctx, raw_req, raw_resp, "DescribeCollection",
      [&](const pb::DescribeCollectionRequest& req, pb::DescribeCollectionResponse* resp,
          CallRecord& rec) -> absl::Status {
    ASSIGN_OR_RETURN(CollectionStore * s, store());
    auto failed = s->Failed();
    if (auto it = failed.find(req.collection()); it != failed.end()) {
      rec.SetLabel(kCollectionLabel, req.collection());
      FailedToProto(it->first, it->second, resp->mutable_info());
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, s->Get(req.collection()));
    rec.SetLabel(kCollectionLabel, req.collection());
    ToProto(c->Status(), resp->mutable_info());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetrievalService::ListCollections(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return RawUnary<pb::ListCollectionsRequest, pb::ListCollectionsResponse>(
      ctx, raw_req, raw_resp, "ListCollections",
      [&](const pb::ListCollectionsRequest&, pb::ListCollectionsResponse* resp,
          CallRecord&) -> absl::Status {
    ASSIGN_OR_RETURN(CollectionStore * s, store());
    for (const auto& c : s->List()) ToProto(c->Status(), resp->add_collections());
    for (const auto& [name, error] : s->Failed()) {
      FailedToProto(name, error, resp->add_collections());
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetrievalService::DropCollection(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return RawUnary<pb::DropCollectionRequest, pb::DropCollectionResponse>(
      ctx, raw_req, raw_resp, "DropCollection",
      [&](const pb::DropCollectionRequest& req, pb::DropCollectionResponse* resp,
          CallRecord&) -> absl::Status {
    ASSIGN_OR_RETURN(CollectionStore * s, store());
    return s->Drop(req.collection());
  });
}

// Each message of the stream is one batch: parsed here from its raw bytes
// (upsert_wire.proto), validated whole, logged durably, applied. A message
// that does not parse or holds invalid UTF-8, or a bad batch, ends the
// stream with INVALID_ARGUMENT (or the batch's error) naming the message
// and saying what was applied before it; earlier batches stay applied, as
// acknowledged by the stream so far.
class RetrievalService::UpsertReactor
    : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  UpsertReactor(RetrievalService* service, grpc::ByteBuffer* resp)
      : service_(service), resp_(resp), record_(Calls(), "Upsert") {
    StartRead(&buffer_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // Half-close (or a cancelled call, whose status nobody reads): every
      // message sent was read, since gRPC no longer parses them for us.
      Done(absl::OkStatus());
      return;
    }
    absl::Status s = Apply();
    if (!s.ok()) {
      Done(absl::Status(
          s.code(),
          absl::StrCat("message ", messages_, " of the Upsert stream: ",
                       s.message(), " (", messages_, " messages with ",
                       resp_proto_.upserted(),
                       " entries were applied before it; nothing of it or "
                       "later messages)")));
      return;
    }
    ++messages_;
    StartRead(&buffer_);
  }
  void OnCancel() override {}
  void OnDone() override { delete this; }

 private:
  static absl::Status CheckUtf8(absl::string_view field, const std::string& s) {
    size_t at = 0;
    if (IsValidUtf8(s, &at)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": expected valid UTF-8 (a proto3 string), byte ", at,
        " is not: ", QuoteUserInput(s)));
  }

  absl::Status Apply() {
    wire::UpsertRequestWire req;
    {
      grpc::ProtoBufferReader reader(&buffer_);
      if (!req.ParseFromZeroCopyStream(&reader)) {
        return absl::InvalidArgumentError(
            "not a valid recsys.v1.UpsertRequest (the bytes do not parse)");
      }
    }
    buffer_.Clear();
    RETURN_IF_ERROR(CheckUtf8("collection", req.collection()));
    if (collection_ == nullptr) {
      ASSIGN_OR_RETURN(collection_, service_->Lookup(req.collection()));
      record_.SetLabel(kCollectionLabel, req.collection());
    } else if (!req.collection().empty() &&
               req.collection() != collection_->config().name) {
      return absl::InvalidArgumentError(absl::StrCat(
          "collection: expected '", collection_->config().name,
          "' (as in the first message of the stream), got ",
          QuoteUserInput(req.collection())));
    }
    std::vector<Entry> batch(req.entries_size());
    for (int i = 0; i < req.entries_size(); ++i) {
      wire::EntryWire* e = req.mutable_entries(i);
      const std::string where = absl::StrCat("entries[", i, "]");
      RETURN_IF_ERROR(CheckUtf8(where + ".key", e->key()));
      batch[i].key = std::move(*e->mutable_key());
      batch[i].vector.assign(e->vector().values().begin(),
                             e->vector().values().end());
      batch[i].payload.reserve(e->payload_size());
      for (int j = 0; j < e->payload_size(); ++j) {
        wire::PayloadFieldWire* f = e->mutable_payload(j);
        RETURN_IF_ERROR(CheckUtf8(
            absl::StrCat(where, ".payload field ", QuoteUserInput(f->key())),
            f->key()));
        RETURN_IF_ERROR(CheckUtf8(
            absl::StrCat(where, ".payload[", QuoteUserInput(f->key()), "]"),
            f->value()));
        batch[i].payload.emplace_back(std::move(*f->mutable_key()),
                                      std::move(*f->mutable_value()));
      }
    }
    RETURN_IF_ERROR(collection_->Upsert(std::move(batch)));
    resp_proto_.set_upserted(resp_proto_.upserted() + req.entries_size());
    resp_proto_.set_batches(resp_proto_.batches() + 1);
    return absl::OkStatus();
  }

  void Done(absl::Status s) {
    if (s.ok()) s = SerializeResponse(resp_proto_, resp_);
    record_.Finish(s);
    Finish(ToGrpcStatus(s));
  }

  RetrievalService* service_;
  grpc::ByteBuffer* resp_;
  pb::UpsertResponse resp_proto_;
  CallRecord record_;
  grpc::ByteBuffer buffer_;
  int64_t messages_ = 0;  // applied
  std::shared_ptr<Collection> collection_;
};

grpc::ServerReadReactor<grpc::ByteBuffer>* RetrievalService::Upsert(
    grpc::CallbackServerContext* ctx, grpc::ByteBuffer* resp) {
  return new UpsertReactor(this, resp);
}

grpc::ServerUnaryReactor* RetrievalService::Delete(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return RawUnary<pb::DeleteRequest, pb::DeleteResponse>(
      ctx, raw_req, raw_resp, "Delete",
      [&](const pb::DeleteRequest& req, pb::DeleteResponse* resp,
          CallRecord& rec) -> absl::Status {
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, Lookup(req.collection()));
    rec.SetLabel(kCollectionLabel, req.collection());
    std::vector<std::string> keys(req.keys().begin(), req.keys().end());
    ASSIGN_OR_RETURN(int64_t deleted, c->Delete(keys));
    resp->set_deleted(deleted);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetrievalService::Get(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return RawUnary<pb::GetRequest, pb::GetResponse>(
      ctx, raw_req, raw_resp, "Get",
      [&](const pb::GetRequest& req, pb::GetResponse* resp,
          CallRecord& rec) -> absl::Status {
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, Lookup(req.collection()));
    rec.SetLabel(kCollectionLabel, req.collection());
    if (req.keys_size() > options_.max_exclude_keys) {
      return absl::InvalidArgumentError(absl::StrCat(
          "keys: expected at most ", options_.max_exclude_keys, ", got ",
          req.keys_size()));
    }
    const std::vector<std::string> keys(req.keys().begin(),
                                        req.keys().end());
    RETURN_IF_ERROR(ValidateKeys(c->limits(), "keys", keys));
    if (req.staged()) {
      if (req.version() != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "version: must be 0 with staged=true, got ", req.version()));
      }
      std::vector<std::optional<Entry>> got = c->GetStaged(keys);
      for (size_t i = 0; i < keys.size(); ++i) {
        if (!got[i].has_value()) {
          resp->add_missing_keys(keys[i]);
          continue;
        }
        pb::Entry* e = resp->add_entries();
        FillEntry(keys[i], got[i]->vector, req.include_vectors(), e);
        e->mutable_payload()->insert(got[i]->payload.begin(),
                                     got[i]->payload.end());
      }
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(auto version, c->GetVersion(req.version()));
    resp->set_version(version->version());
    for (const std::string& key : req.keys()) {
      std::optional<int64_t> id = version->Find(key);
      if (!id.has_value()) {
        resp->add_missing_keys(key);
        continue;
      }
      pb::Entry* e = resp->add_entries();
      FillEntry(key, version->vector(*id), req.include_vectors(), e);
      PayloadToProto(*version, *id, e->mutable_payload());
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetrievalService::Publish(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  auto record = std::make_shared<CallRecord>(Calls(), "Publish");
  auto* reactor = ctx->DefaultReactor();
  // Read raw like the others (a name that is not UTF-8 gets a status naming
  // the field); with wait, the response is written when the build ends.
  auto resp = std::make_shared<pb::PublishResponse>();
  auto finish = [record, reactor, resp, raw_resp](absl::Status s) {
    if (s.ok()) s = SerializeResponse(*resp, raw_resp);
    record->Finish(s);
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  };
  auto fail = [&](const absl::Status& s) { return finish(s); };
  pb::PublishRequest req;
  if (absl::Status parsed = ParseRequest(*raw_req, &req); !parsed.ok()) {
    return fail(parsed);
  }
  if (req.version() < 0) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "version: expected 0 (next) or a positive number, got ",
        req.version())));
  }
  auto c = Lookup(req.collection());
  if (!c.ok()) return fail(c.status());
  record->SetLabel(kCollectionLabel, req.collection());
  Collection::PublishCallback done;
  if (req.wait()) {
    done = [finish, resp](absl::StatusOr<VersionStatus> r) {
      if (r.ok()) ToProto(*r, resp->mutable_version());
      finish(r.status());
    };
  }
  absl::StatusOr<VersionStatus> started = (*c)->Publish(req.version(), done);
  if (!started.ok()) return fail(started.status());
  if (!req.wait()) {
    ToProto(*started, resp->mutable_version());
    return fail(absl::OkStatus());
  }
  return reactor;
}

grpc::ServerUnaryReactor* RetrievalService::Rollback(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return RawUnary<pb::RollbackRequest, pb::RollbackResponse>(
      ctx, raw_req, raw_resp, "Rollback",
      [&](const pb::RollbackRequest& req, pb::RollbackResponse* resp,
          CallRecord& rec) -> absl::Status {
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, Lookup(req.collection()));
    rec.SetLabel(kCollectionLabel, req.collection());
    ASSIGN_OR_RETURN(VersionStatus v, c->Rollback(req.version()));
    ToProto(v, resp->mutable_version());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetrievalService::ListVersions(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return RawUnary<pb::ListVersionsRequest, pb::ListVersionsResponse>(
      ctx, raw_req, raw_resp, "ListVersions",
      [&](const pb::ListVersionsRequest& req, pb::ListVersionsResponse* resp,
          CallRecord& rec) -> absl::Status {
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, Lookup(req.collection()));
    rec.SetLabel(kCollectionLabel, req.collection());
    const CollectionStatus st = c->Status();
    resp->set_live_version(st.live_version);
    for (const VersionStatus& v : st.versions) ToProto(v, resp->add_versions());
    return absl::OkStatus();
  });
}

namespace {

// The request's bounds, before anything is looked up.
absl::Status ValidateSearchRequest(const pb::SearchRequest& req,
                                   const RetrievalService::Options& options) {
  if (req.k() < 1 || req.k() > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("k: expected 1..1000, got ", req.k()));
  }
  if (req.queries_size() < 1 ||
      req.queries_size() > options.max_queries_per_request) {
    return absl::InvalidArgumentError(
        absl::StrCat("queries: expected 1..", options.max_queries_per_request,
                     " queries, got ", req.queries_size()));
  }
  if (req.exclude_keys_size() > options.max_exclude_keys) {
    return absl::InvalidArgumentError(
        absl::StrCat("exclude_keys: expected at most ",
                     options.max_exclude_keys, ", got ",
                     req.exclude_keys_size()));
  }
  int64_t total_excluded = req.exclude_keys_size();
  for (int i = 0; i < req.queries_size(); ++i) {
    const int n = req.queries(i).exclude_keys_size();
    total_excluded += n;
    if (total_excluded > options.max_exclude_keys) {
      return absl::InvalidArgumentError(absl::StrCat(
          "queries[", i, "].exclude_keys: expected at most ",
          options.max_exclude_keys,
          " exclude keys in the request and its queries together, got ",
          total_excluded, " by this query (", n, " in it)"));
    }
  }
  if (req.params().nprobe() < 0 || req.params().nprobe() > 65536 ||
      req.params().ef_search() < 0 || req.params().ef_search() > 65536) {
    return absl::InvalidArgumentError(
        "params: expected nprobe and ef_search in 0..65536 (0: index "
        "default)");
  }
  return absl::OkStatus();
}

// A search in the core's terms: the pinned version, one BatchQuery per
// request query (vectors validated and normalised as stored ones are), the
// per-request options.
struct SearchPlan {
  std::shared_ptr<const CollectionVersion> version;
  std::vector<BatchQuery> queries;
  VersionSearchOptions options;
};

absl::StatusOr<SearchPlan> PlanSearch(
    const pb::SearchRequest& req, std::shared_ptr<const CollectionVersion> version,
    absl::Time deadline) {
  SearchPlan plan;
  plan.version = std::move(version);
  const CollectionVersion& v = *plan.version;
  const CollectionConfig& config = v.config();
  std::vector<int64_t> excluded;
  excluded.reserve(req.exclude_keys_size());
  for (const std::string& key : req.exclude_keys()) {
    if (auto id = v.Find(key)) excluded.push_back(*id);
  }
  plan.queries.resize(req.queries_size());
  for (int i = 0; i < req.queries_size(); ++i) {
    const pb::SearchQuery& q = req.queries(i);
    BatchQuery& out = plan.queries[i];
    out.k = req.k();
    out.exclude_ids = excluded;
    for (const std::string& key : q.exclude_keys()) {
      if (auto id = v.Find(key)) out.exclude_ids.push_back(*id);
    }
    out.deadline = deadline;
    if (q.has_vector()) {
      out.vector.assign(q.vector().values().begin(), q.vector().values().end());
      RETURN_IF_ERROR(ValidateVector(
          config, absl::StrCat("queries[", i, "].vector"), out.vector));
    } else if (q.query_case() == pb::SearchQuery::kKey) {
      auto id = v.Find(q.key());
      if (!id.has_value()) {
        return absl::NotFoundError(absl::StrCat(
            "queries[", i, "].key: ", QuoteUserInput(q.key()),
            " is not in version ", v.version(), " of '", config.name, "'"));
      }
      auto vec = v.vector(*id);
      out.vector.assign(vec.begin(), vec.end());
      out.exclude_ids.push_back(*id);  // "more like this" leaves itself out
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("queries[", i, "]: expected a vector or a key"));
    }
  }
  plan.options.nprobe = req.params().nprobe();
  plan.options.ef_search = req.params().ef_search();
  plan.options.payload_filter = FromProto(req.payload_filter());
  return plan;
}

void ResultToProto(const CollectionVersion& v, const std::vector<SearchHit>& hits,
                   bool include_payload, pb::SearchResponse* resp) {
  pb::SearchResult* r = resp->add_results();
  for (const SearchHit& h : hits) FillHit(v, h, include_payload, r->add_hits());
}

}  // namespace

grpc::ServerUnaryReactor* RetrievalService::Search(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  auto record = std::make_shared<CallRecord>(Calls(), "Search");
  auto* reactor = ctx->DefaultReactor();
  struct Call {
    pb::SearchRequest request;
    pb::SearchResponse response;
  };
  auto call = std::make_shared<Call>();
  auto finish = [record, reactor, call, raw_resp](absl::Status s) {
    if (s.ok()) s = SerializeResponse(call->response, raw_resp);
    record->Finish(s);
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  };
  if (absl::Status s = ParseRequest(*raw_req, &call->request); !s.ok()) {
    return finish(s);
  }
  const pb::SearchRequest* req = &call->request;
  pb::SearchResponse* resp = &call->response;
  // Validate.
  if (absl::Status s = ValidateSearchRequest(*req, options_); !s.ok()) {
    return finish(s);
  }
  if (ctx->deadline() < std::chrono::system_clock::now()) {
    return finish(absl::DeadlineExceededError("deadline expired before search"));
  }
  auto c = Lookup(req->collection());
  if (!c.ok()) return finish(c.status());
  record->SetLabel(kCollectionLabel, req->collection());
  auto v = (*c)->GetVersion(req->version());
  if (!v.ok()) return finish(v.status());
  absl::StatusOr<SearchPlan> plan =
      PlanSearch(*req, *std::move(v), absl::FromChrono(ctx->deadline()));
  if (!plan.ok()) return finish(plan.status());
  std::shared_ptr<const CollectionVersion> version = plan->version;
  resp->set_version(version->version());
  const bool include_payload = req->include_payload();
  auto* batch_size = M().batch_size->WithLabels({version->config().name});

  // Delegate: a single query joins a dynamic batch and finishes from the
  // batcher's thread; a caller's batch is one FAISS call on this thread.
  if (plan->queries.size() == 1) {
    batcher_->Submit(
        version, std::move(plan->options), std::move(plan->queries[0]),
        [finish, version, resp, include_payload, batch_size](
            absl::StatusOr<std::vector<SearchHit>> hits, int batch) {
          if (batch > 0) batch_size->Observe(batch);
          if (hits.ok()) ResultToProto(*version, *hits, include_payload, resp);
          finish(hits.status());
        });
    return reactor;
  }
  std::vector<VersionQuery> vq(plan->queries.size());
  for (size_t i = 0; i < plan->queries.size(); ++i) {
    vq[i].vector = plan->queries[i].vector.data();
    vq[i].k = plan->queries[i].k;
    vq[i].exclude_ids = std::move(plan->queries[i].exclude_ids);
  }
  auto results = version->Search(vq, plan->options);
  if (results.ok()) {
    batch_size->Observe(vq.size());
    for (const auto& hits : *results) {
      ResultToProto(*version, hits, include_payload, resp);
    }
  }
  // Convert once and record.
  return finish(results.status());
}

std::vector<std::string> RetrievalService::UnhealthyCollections() const {
  std::vector<std::string> out;
  CollectionStore* s = store_.load();
  if (s == nullptr) return out;
  for (const auto& c : s->List()) {
    const CollectionStatus st = c->Status();
    if (!st.error.empty()) out.push_back(st.config.name);
  }
  for (const auto& [name, error] : s->Failed()) out.push_back(name);
  return out;
}

}  // namespace retrieval
}  // namespace recsys
