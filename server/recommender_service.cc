#include "server/recommender_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/call_metrics.h"
#include "common/grpc_status.h"
#include "common/metrics.h"
#include "common/raw_request.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "common/validation.h"

namespace recsys {
namespace {

namespace pb = ::recsys::v1;

// Items the POPULAR fallback considers when the request has a payload filter.
constexpr int kPopularFilterScan = 1000;
constexpr size_t kMaxKeyBytes = 1024;

const CallMetrics& Calls() {
  static const CallMetrics* m = new CallMetrics("recsys_recommender", "Recommender");
  return *m;
}

struct ServiceMetrics {
  Counter* unknown_items;
  Histogram* queue;
  Histogram* encode;
  Histogram* retrieve;
  Histogram* total;
  Histogram* batch_size;
  Counter* popular;
  Gauge* served_version;
  MetricFamily<Counter>* batch_users;

  static const ServiceMetrics& Get() {
    static const ServiceMetrics m = [] {
      auto& r = MetricsRegistry::Global();
      ServiceMetrics x;
      x.unknown_items = r.AddCounter("recsys_recommender_unknown_history_items_total",
                                     "History keys not in the model's catalog.")
                            ->WithLabels({});
      auto* stages = r.AddHistogram(
          "recsys_recommender_stage_seconds",
          "Per-user latency by stage: queue (waiting for the encoder), encode (the "
          "batched forward), retrieve (the sidecar call), total.",
          {"stage"},
          {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5});
      x.queue = stages->WithLabels({"queue"});
      x.encode = stages->WithLabels({"encode"});
      x.retrieve = stages->WithLabels({"retrieve"});
      x.total = stages->WithLabels({"total"});
      x.batch_size = r.AddHistogram("recsys_recommender_encode_batch_size",
                                    "Users per batched user-encoder forward.", {},
                                    {1, 2, 4, 8, 16, 32, 64, 128})
                         ->WithLabels({});
      x.popular = r.AddCounter("recsys_recommender_fallbacks_total",
                               "Answers not from the user encoder, by fallback.",
                               {"fallback"})
                      ->WithLabels({"POPULAR"});
      x.served_version = r.AddGauge("recsys_recommender_served_model_version",
                                    "The model version of the latest answer.")
                             ->WithLabels({});
      x.batch_users = r.AddCounter("recsys_recommender_batch_users_total",
                                   "RecommendBatch users answered, by code.", {"code"});
      return x;
    }();
    return m;
  }
};

// The sidecar's failure, saying which side failed, with the sidecar's code.
absl::Status SidecarError(const grpc::Status& status) {
  const absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(), absl::StrCat("retrieval sidecar: ", s.message()));
}

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto d = context.deadline();
  if (d >= std::chrono::system_clock::time_point::max() - std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(d);
}

absl::Status CheckModelRef(const pb::ModelVersionRef& ref,
                           const RecommenderService::Options& o) {
  if (!ref.model().empty() && ref.model() != o.model_name) {
    return absl::NotFoundError(absl::StrCat("model.model: this server serves ",
                                            QuoteUserInput(o.model_name), ", not ",
                                            QuoteUserInput(ref.model())));
  }
  if (ref.version() < 0) {
    return InvalidField("model.version", "must be >= 0 (0: live)", absl::StrCat(ref.version()));
  }
  return absl::OkStatus();
}

// A stable string for grouping requests by payload filter.
std::string FilterKey(const google::protobuf::Map<std::string, std::string>& filter) {
  std::map<std::string, std::string> sorted(filter.begin(), filter.end());
  std::string key;
  for (const auto& [f, v] : sorted) absl::StrAppend(&key, f.size(), ":", f, v.size(), ":", v);
  return key;
}

bool Matches(const google::protobuf::Map<std::string, std::string>& payload,
             const google::protobuf::Map<std::string, std::string>& filter) {
  for (const auto& [f, v] : filter) {
    auto it = payload.find(f);
    if (it == payload.end() || it->second != v) return false;
  }
  return true;
}

// One RecommendBatch user's message, naming the user: a message that opens
// with a field of RecommendRequest ("history[0]: ...") becomes
// "users[3].history[0]: ...", any other "users[3]: ...".
std::string BatchUserMessage(int index, absl::string_view message) {
  if (message.empty()) return "";
  const size_t end = message.find_first_not_of("abcdefghijklmnopqrstuvwxyz_");
  const absl::string_view head = message.substr(0, end);
  const bool names_field =
      !head.empty() && end != absl::string_view::npos &&
      (message[end] == ':' || message[end] == '[' || message[end] == '.' ||
       message[end] == ' ') &&
      pb::RecommendRequest::descriptor()->FindFieldByName(std::string(head)) != nullptr;
  return absl::StrCat("users[", index, "]", names_field ? "." : ": ", message);
}

// A raw call's request and response (parsed and serialized here, see
// common/raw_request.h), alive until the call finishes.
template <typename Request, typename Response>
struct RawCall {
  RawCall(grpc::CallbackServerContext* context, grpc::ByteBuffer* out, const char* method)
      : reactor(context->DefaultReactor()), out(out), record(Calls(), method) {}

  // Serializes the response when `s` is OK, then finishes the call with
  // what the caller gets.
  void Finish(absl::Status s) {
    if (s.ok()) s = SerializeResponse(response, out);
    record.Finish(s);
    reactor->Finish(ToGrpcStatus(s));
  }

  // Parses `in` into `request`; when it does not parse, finishes the call
  // with why. Whether it parsed.
  bool ParseOrFinish(const grpc::ByteBuffer& in) {
    absl::Status parsed = ParseRequest(in, &request);
    if (!parsed.ok()) Finish(parsed);
    return parsed.ok();
  }

  Request request;
  Response response;
  grpc::ServerUnaryReactor* const reactor;
  grpc::ByteBuffer* const out;
  CallRecord record;
};

// Moves the hit's key and payload into the response (the sidecar's reply
// is dropped afterwards): no copy of every payload string.
void MoveHit(pb::SearchHit* hit, pb::RecommendResponse* response) {
  auto* item = response->add_items();
  item->mutable_key()->swap(*hit->mutable_key());
  item->set_score(hit->score());
  item->mutable_payload()->swap(*hit->mutable_payload());
}

}  // namespace

// One user's recommendation in flight (a Recommend call or one user of a
// RecommendBatch).
struct RecommenderService::UserCall : EncodeTask {
  const pb::RecommendRequest* request = nullptr;
  pb::RecommendResponse* response = nullptr;
  grpc::CallbackServerContext* server_context = nullptr;
  std::function<void(const absl::Status&)> done;
  std::shared_ptr<const ServingModel> model;
  // History keys, unless include_history (views into the request, which
  // outlives the call).
  absl::flat_hash_set<absl::string_view> exclude;
  // Of those, the ones in the catalog, each once in history order (views
  // into the request): the keys the sidecar is asked to leave out.
  std::vector<absl::string_view> known_exclude;
  const absl::Time start = absl::Now();
  absl::Time retrieve_start;
  // Single-user sidecar calls.
  std::unique_ptr<grpc::ClientContext> context;
  pb::SearchRequest search;
  pb::SearchResponse result;
  pb::GetRequest get;
  pb::GetResponse got;
  std::vector<int64_t> popular;  // cold start candidates

  // Moves the sidecar's hits for this user into the response, up to k. The
  // sidecar left the known history out; the check here also drops a history
  // key the version's catalog lacks but its collection holds.
  void TakeHits(pb::SearchResult* result) {
    for (pb::SearchHit& hit : *result->mutable_hits()) {
      if (response->items_size() >= request->k()) break;
      if (exclude.count(hit.key())) continue;
      MoveHit(&hit, response);
    }
  }

  void Finish(const absl::Status& s) {
    const ServiceMetrics& m = ServiceMetrics::Get();
    m.total->ObserveDuration(absl::Now() - start);
    if (s.ok()) {
      m.served_version->Set(static_cast<double>(model->version()));
    } else {
      response->Clear();
    }
    done(s);
  }
  void Retrieved() {
    ServiceMetrics::Get().retrieve->ObserveDuration(absl::Now() - retrieve_start);
  }
};

// One multi-query Search for several users' encoded vectors.
struct RecommenderService::SearchGroup {
  std::vector<std::shared_ptr<UserCall>> calls;
  grpc::ClientContext context;
  pb::SearchRequest search;
  pb::SearchResponse result;
};

absl::Status ValidateRecommendRequest(const pb::RecommendRequest& r,
                                      const RecommenderService::Options& o) {
  RETURN_IF_ERROR(CheckRange("k", r.k(), 1, o.max_k));
  RETURN_IF_ERROR(CheckMaxSize("history", r.history_size(), o.max_history));
  for (int i = 0; i < r.history_size(); ++i) {
    RETURN_IF_ERROR(
        CheckNonEmpty(absl::StrCat("history[", i, "]"), r.history(i), kMaxKeyBytes));
  }
  for (const auto& [field, value] : r.payload_filter()) {
    RETURN_IF_ERROR(CheckNonEmpty("payload_filter key", field, kMaxKeyBytes));
  }
  return CheckModelRef(r.model(), o);
}

absl::Status ValidateSimilarItemsRequest(const pb::SimilarItemsRequest& r,
                                         const RecommenderService::Options& o) {
  RETURN_IF_ERROR(CheckNonEmpty("item_key", r.item_key(), kMaxKeyBytes));
  RETURN_IF_ERROR(CheckRange("k", r.k(), 1, o.max_k));
  for (const auto& [field, value] : r.payload_filter()) {
    RETURN_IF_ERROR(CheckNonEmpty("payload_filter key", field, kMaxKeyBytes));
  }
  return CheckModelRef(r.model(), o);
}

RecommenderService::RecommenderService(Options options, const ModelRegistry* registry,
                                       pb::Retrieval::StubInterface* retrieval)
    : options_(std::move(options)), registry_(registry), retrieval_(retrieval) {
  batcher_ = std::make_unique<EncodeBatcher>(
      options_.batching, [this](const std::shared_ptr<const ServingModel>& model,
                                std::vector<std::shared_ptr<EncodeTask>> batch) {
        OnEncoded(model, std::move(batch));
      });
}

RecommenderService::~RecommenderService() { batcher_.reset(); }

void RecommenderService::Answer(std::shared_ptr<UserCall> call) {
  const pb::RecommendRequest& r = *call->request;
  absl::Status valid = ValidateRecommendRequest(r, options_);
  if (!valid.ok()) {
    call->Finish(valid);
    return;
  }
  absl::StatusOr<std::shared_ptr<const ServingModel>> model =
      registry_->Get(r.model().version());
  if (!model.ok()) {
    call->Finish(model.status());
    return;
  }
  call->model = std::move(*model);
  const ServingModel& m = *call->model;
  int unknown = 0;
  call->rows = m.KnownRows({r.history().begin(), r.history().end()}, &unknown);
  ServiceMetrics::Get().unknown_items->Increment(unknown);
  call->response->mutable_model()->set_model(options_.model_name);
  call->response->mutable_model()->set_version(m.version());
  call->response->set_unknown_history_items(unknown);
  if (!r.include_history()) {
    for (const std::string& key : r.history()) {
      if (call->exclude.insert(key).second && m.RowOf(key) >= 0) {
        call->known_exclude.push_back(key);
      }
    }
  }
  if (call->rows.empty()) {
    ColdStart(std::move(call));
    return;
  }
  call->deadline = DeadlineOf(*call->server_context);
  std::shared_ptr<const ServingModel> pinned = call->model;
  batcher_->Submit(std::move(pinned), std::move(call));
}

void RecommenderService::ColdStart(std::shared_ptr<UserCall> call) {
  const ServingModel& m = *call->model;
  const pb::RecommendRequest& r = *call->request;
  if (!m.has_popularity()) {
    call->Finish(absl::FailedPreconditionError(absl::StrCat(
        "history: none of its ", r.history_size(),
        " item keys is in the catalog of model version ", m.version(),
        ", and that version has no popularity table for the cold-start fallback "
        "(it was written before popularity was stored with versions)")));
    return;
  }
  ServiceMetrics::Get().popular->Increment();
  call->response->set_fallback(pb::POPULAR);
  const size_t want = r.payload_filter().empty()
                          ? static_cast<size_t>(r.k())
                          : static_cast<size_t>(std::max(r.k(), kPopularFilterScan));
  for (int64_t row : m.PopularRows()) {
    if (call->popular.size() >= want) break;
    if (call->exclude.count(m.KeyOf(row))) continue;
    call->popular.push_back(row);
  }
  call->get.set_collection(options_.model_name);
  call->get.set_version(m.version());
  for (int64_t row : call->popular) call->get.add_keys(m.KeyOf(row));
  call->context = grpc::ClientContext::FromCallbackServerContext(*call->server_context);
  call->retrieve_start = absl::Now();
  retrieval_->async()->Get(call->context.get(), &call->get, &call->got,
                           [call](grpc::Status status) {
    call->Retrieved();
    if (!status.ok()) {
      call->Finish(SidecarError(status));
      return;
    }
    absl::flat_hash_map<std::string, const pb::Entry*> entries;
    for (const pb::Entry& e : call->got.entries()) entries[e.key()] = &e;
    const ServingModel& model = *call->model;
    const auto& filter = call->request->payload_filter();
    for (int64_t row : call->popular) {
      if (call->response->items_size() >= call->request->k()) break;
      auto it = entries.find(model.KeyOf(row));
      if (it == entries.end()) continue;  // not in the collection version
      if (!Matches(it->second->payload(), filter)) continue;
      auto* item = call->response->add_items();
      item->set_key(model.KeyOf(row));
      item->set_score(model.PopularityOf(row));
      *item->mutable_payload() = it->second->payload();
    }
    call->Finish(absl::OkStatus());
  });
}

void RecommenderService::OnEncoded(const std::shared_ptr<const ServingModel>& model,
                                   std::vector<std::shared_ptr<EncodeTask>> batch) {
  const ServiceMetrics& metrics = ServiceMetrics::Get();
  std::map<std::string, std::vector<std::shared_ptr<UserCall>>> groups;
  for (std::shared_ptr<EncodeTask>& task : batch) {
    auto call = std::static_pointer_cast<UserCall>(std::move(task));
    metrics.queue->ObserveDuration(call->queue_time);
    if (!call->status.ok()) {
      call->Finish(call->status);
      continue;
    }
    metrics.encode->ObserveDuration(call->encode_time);
    metrics.batch_size->Observe(call->batch_size);
    groups[FilterKey(call->request->payload_filter())].push_back(std::move(call));
  }
  // One multi-query Search per filter, split where the users' exclusions
  // together would pass the sidecar's limit.
  auto search = [this](std::vector<std::shared_ptr<UserCall>> calls) {
    if (calls.size() == 1) {
      SearchAlone(std::move(calls[0]));
    } else if (!calls.empty()) {
      SearchTogether(std::move(calls));
    }
  };
  for (auto& [unused, calls] : groups) {
    std::vector<std::shared_ptr<UserCall>> together;
    size_t excluded = 0;
    for (auto& call : calls) {
      const size_t n = call->known_exclude.size();
      if (!together.empty() &&
          excluded + n > static_cast<size_t>(options_.max_sidecar_exclude_keys)) {
        search(std::move(together));
        together.clear();
        excluded = 0;
      }
      excluded += n;
      together.push_back(std::move(call));
    }
    search(std::move(together));
  }
}

void RecommenderService::SearchAlone(std::shared_ptr<UserCall> call) {
  const pb::RecommendRequest& r = *call->request;
  pb::SearchRequest& search = call->search;
  search.set_collection(options_.model_name);
  search.set_version(call->model->version());
  search.set_k(r.k());
  search.set_include_payload(true);
  *search.add_queries()->mutable_vector()->mutable_values() = {call->user.begin(),
                                                               call->user.end()};
  for (absl::string_view key : call->known_exclude) search.add_exclude_keys(std::string(key));
  search.mutable_payload_filter()->insert(r.payload_filter().begin(), r.payload_filter().end());
  // Inherits the caller's deadline and cancellation.
  call->context = grpc::ClientContext::FromCallbackServerContext(*call->server_context);
  call->retrieve_start = absl::Now();
  retrieval_->async()->Search(call->context.get(), &call->search, &call->result,
                              [call](grpc::Status status) {
    call->Retrieved();
    if (!status.ok()) {
      call->Finish(SidecarError(status));
      return;
    }
    if (call->result.results_size() != 1) {
      call->Finish(absl::InternalError(absl::StrCat(
          "retrieval sidecar: ", call->result.results_size(), " results for 1 query")));
      return;
    }
    call->TakeHits(call->result.mutable_results(0));
    call->Finish(absl::OkStatus());
  });
}

void RecommenderService::SearchTogether(std::vector<std::shared_ptr<UserCall>> calls) {
  auto group = std::make_shared<SearchGroup>();
  group->calls = std::move(calls);
  pb::SearchRequest& search = group->search;
  const UserCall& first = *group->calls[0];
  search.set_collection(options_.model_name);
  search.set_version(first.model->version());
  search.set_include_payload(true);
  search.mutable_payload_filter()->insert(first.request->payload_filter().begin(),
                                          first.request->payload_filter().end());
  int k = 1;
  absl::Time deadline = absl::InfinitePast();
  for (const auto& call : group->calls) {
    k = std::max(k, call->request->k());
    deadline = std::max(deadline, call->deadline);
    pb::SearchQuery* query = search.add_queries();
    *query->mutable_vector()->mutable_values() = {call->user.begin(), call->user.end()};
    for (absl::string_view key : call->known_exclude) query->add_exclude_keys(std::string(key));
  }
  search.set_k(k);
  if (deadline != absl::InfiniteFuture()) group->context.set_deadline(absl::ToChronoTime(deadline));
  const absl::Time start = absl::Now();
  for (auto& call : group->calls) call->retrieve_start = start;
  retrieval_->async()->Search(&group->context, &group->search, &group->result,
                              [group](grpc::Status status) {
    const int n = static_cast<int>(group->calls.size());
    absl::Status failed;
    if (!status.ok()) {
      failed = SidecarError(status);
    } else if (group->result.results_size() != n) {
      failed = absl::InternalError(absl::StrCat("retrieval sidecar: ",
                                                group->result.results_size(),
                                                " results for ", n, " queries"));
    }
    for (int i = 0; i < n; ++i) {
      UserCall& call = *group->calls[i];
      call.Retrieved();
      if (!failed.ok()) {
        call.Finish(failed);
        continue;
      }
      call.TakeHits(group->result.mutable_results(i));
      call.Finish(absl::OkStatus());
    }
  });
}

grpc::ServerUnaryReactor* RecommenderService::Recommend(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request,
                                                        grpc::ByteBuffer* response) {
  auto raw = std::make_shared<RawCall<pb::RecommendRequest, pb::RecommendResponse>>(
      context, response, "Recommend");
  grpc::ServerUnaryReactor* reactor = raw->reactor;
  if (!raw->ParseOrFinish(*request)) return reactor;
  auto call = std::make_shared<UserCall>();
  call->request = &raw->request;
  call->response = &raw->response;
  call->server_context = context;
  call->done = [raw](const absl::Status& s) { raw->Finish(s); };
  Answer(std::move(call));
  return reactor;
}

grpc::ServerUnaryReactor* RecommenderService::RecommendBatch(grpc::CallbackServerContext* context,
                                                             const grpc::ByteBuffer* request,
                                                             grpc::ByteBuffer* response) {
  auto raw = std::make_shared<RawCall<pb::RecommendBatchRequest, pb::RecommendBatchResponse>>(
      context, response, "RecommendBatch");
  grpc::ServerUnaryReactor* reactor = raw->reactor;
  // Why each user could not be read, when the batch did not parse whole (a
  // key that is not UTF-8 fails that user only).
  std::vector<absl::Status> unreadable;
  if (absl::Status parsed = ParseRequest(*request, &raw->request); !parsed.ok()) {
    std::vector<std::string> users;
    if (SplitRepeatedField(FlatBytes(*request), 1, &users).ok()) {
      raw->request.Clear();
      for (const std::string& bytes : users) {
        unreadable.push_back(ParseRequestBytes(bytes, raw->request.add_users()));
      }
    }
    if (std::all_of(unreadable.begin(), unreadable.end(),
                    [](const absl::Status& s) { return s.ok(); })) {
      raw->Finish(parsed);  // not the users: the batch itself is broken
      return reactor;
    }
  }
  const pb::RecommendBatchRequest& batch = raw->request;
  absl::Status valid = batch.users_size() == 0
                           ? InvalidField("users", "at least one user", "none")
                           : CheckMaxSize("users", batch.users_size(), options_.max_batch_users);
  if (!valid.ok()) {
    raw->Finish(valid);
    return reactor;
  }
  const int n = batch.users_size();
  for (int i = 0; i < n; ++i) raw->response.add_results();
  auto left = std::make_shared<std::atomic<int>>(n);
  for (int i = 0; i < n; ++i) {
    pb::RecommendBatchResult* result = raw->response.mutable_results(i);
    auto call = std::make_shared<UserCall>();
    call->request = &batch.users(i);
    call->response = result->mutable_response();
    call->server_context = context;
    call->done = [raw, left, result, i](const absl::Status& s) {
      result->set_code(static_cast<int32_t>(s.code()));
      result->set_message(BatchUserMessage(i, s.message()));
      if (!s.ok()) result->clear_response();
      ServiceMetrics::Get()
          .batch_users->WithLabels({absl::StatusCodeToString(s.code())})
          ->Increment();
      if (left->fetch_sub(1, std::memory_order_acq_rel) == 1) raw->Finish(absl::OkStatus());
    };
    if (i < static_cast<int>(unreadable.size()) && !unreadable[i].ok()) {
      call->done(unreadable[i]);
      continue;
    }
    Answer(std::move(call));
  }
  return reactor;
}

grpc::ServerUnaryReactor* RecommenderService::SimilarItems(grpc::CallbackServerContext* context,
                                                           const grpc::ByteBuffer* raw_request,
                                                           grpc::ByteBuffer* raw_response) {
  auto raw = std::make_shared<RawCall<pb::SimilarItemsRequest, pb::SimilarItemsResponse>>(
      context, raw_response, "SimilarItems");
  grpc::ServerUnaryReactor* reactor = raw->reactor;
  auto finish = [raw](const absl::Status& s) { raw->Finish(s); };
  const pb::SimilarItemsRequest* request = &raw->request;
  pb::SimilarItemsResponse* response = &raw->response;
  if (!raw->ParseOrFinish(*raw_request)) return reactor;
  absl::Status valid = ValidateSimilarItemsRequest(*request, options_);
  if (!valid.ok()) {
    finish(valid);
    return reactor;
  }
  absl::StatusOr<std::shared_ptr<const ServingModel>> model =
      registry_->Get(request->model().version());
  if (!model.ok()) {
    finish(model.status());
    return reactor;
  }
  if ((*model)->RowOf(request->item_key()) < 0) {
    finish(absl::NotFoundError(absl::StrCat("item_key: ", QuoteUserInput(request->item_key()),
                                            " is not in the catalog of model version ",
                                            (*model)->version())));
    return reactor;
  }
  struct Call {
    std::unique_ptr<grpc::ClientContext> context;
    pb::SearchRequest search;
    pb::SearchResponse result;
    absl::Time start = absl::Now();
  };
  auto call = std::make_shared<Call>();
  call->search.set_collection(options_.model_name);
  call->search.set_version((*model)->version());
  call->search.set_k(request->k());
  call->search.set_include_payload(true);
  call->search.add_queries()->set_key(request->item_key());
  call->search.mutable_payload_filter()->insert(request->payload_filter().begin(),
                                                request->payload_filter().end());
  response->mutable_model()->set_model(options_.model_name);
  response->mutable_model()->set_version((*model)->version());
  call->context = grpc::ClientContext::FromCallbackServerContext(*context);
  retrieval_->async()->Search(
      call->context.get(), &call->search, &call->result,
      [call, response, finish, version = (*model)->version()](grpc::Status status) {
        ServiceMetrics::Get().retrieve->ObserveDuration(absl::Now() - call->start);
        if (!status.ok()) {
          response->Clear();
          finish(SidecarError(status));
          return;
        }
        if (call->result.results_size() != 1) {
          response->Clear();
          finish(absl::InternalError("retrieval sidecar: no result for the query"));
          return;
        }
        for (const pb::SearchHit& hit : call->result.results(0).hits()) {
          auto* item = response->add_items();
          item->set_key(hit.key());
          item->set_score(hit.score());
          *item->mutable_payload() = hit.payload();
        }
        ServiceMetrics::Get().served_version->Set(static_cast<double>(version));
        finish(absl::OkStatus());
      });
  return reactor;
}

grpc::ServerUnaryReactor* RecommenderService::ListModels(grpc::CallbackServerContext* context,
                                                         const pb::ListModelsRequest* request,
                                                         pb::ListModelsResponse* response) {
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
