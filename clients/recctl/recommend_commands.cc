// recctl recommend ...: the recommendation server.
#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "clients/recctl/recctl.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "nlohmann/json.hpp"
#include "proto/recommender.grpc.pb.h"

namespace recsys {
namespace recctl {
namespace {

namespace pb = ::recsys::v1;

std::unique_ptr<pb::Recommender::Stub> Stub(Context& c) {
  return pb::Recommender::NewStub(c.Channel("recommender"));
}

// --history=a,b,c, or --history_file with keys separated by commas, spaces
// or newlines (a users.tsv line's item list works).
absl::StatusOr<std::vector<std::string>> History(const Args& args) {
  std::vector<std::string> keys = args.GetList("history");
  const std::string file = args.Get("history_file");
  if (!file.empty()) {
    ASSIGN_OR_RETURN(std::ifstream in, OpenInputFile("history_file", file));
    std::string word;
    while (in >> word) {
      for (absl::string_view k : absl::StrSplit(word, ',', absl::SkipEmpty())) keys.emplace_back(k);
    }
  }
  return keys;
}

void PrintItemTable(Context& c,
                    const google::protobuf::RepeatedPtrField<pb::RecommendedItem>& items) {
  Table t({"RANK", "ITEM", "SCORE", "TITLE"});
  int rank = 0;
  for (const pb::RecommendedItem& item : items) {
    auto title = item.payload().find("title");
    t.Add({absl::StrCat(++rank), item.key(), absl::StrFormat("%.4f", item.score()),
           title == item.payload().end() ? "" : title->second});
  }
  t.Print(c.out());
}

void PrintItems(Context& c, const pb::RecommendResponse& r) {
  c.out() << "model version " << r.model().version() << "; " << r.unknown_history_items()
          << " unknown history items"
          << (r.fallback() == pb::POPULAR ? "; cold start: the most popular items" : "") << "\n";
  PrintItemTable(c, r.items());
}

Command Recommend() {
  return {"recommend", "items", "the next items for a history",
          "(--history=KEY,KEY,.. | --history_file=F) [--k=10]",
          {{"history", "", "comma-separated item keys, oldest first"},
           {"history_file", "", "a file of item keys, oldest first"},
           {"k", "10", "how many items"},
           {"version", "0", "model version to pin (0: live)"},
           {"include_history", "false", "allow items of the history", true},
           {"filter", "", "field=value[;field=value] payload filter"}},
          [](Context& c) -> absl::Status {
            pb::RecommendRequest req;
            ASSIGN_OR_RETURN(std::vector<std::string> history, History(c.args()));
            for (const std::string& h : history) req.add_history(h);
            ASSIGN_OR_RETURN(int32_t k, c.args().GetInt32("k"));
            req.set_k(k);
            ASSIGN_OR_RETURN(int64_t version, c.args().GetInt("version"));
            req.mutable_model()->set_version(version);
            ASSIGN_OR_RETURN(bool include, c.args().GetBool("include_history"));
            req.set_include_history(include);
            for (absl::string_view kv : absl::StrSplit(c.args().Get("filter"), ';', absl::SkipEmpty())) {
              std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
              (*req.mutable_payload_filter())[p.first] = p.second;
            }
            pb::RecommendResponse resp;
            grpc::Status s = Stub(c)->Recommend(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "recommend");
            if (c.json()) return PrintedJson(c, resp);
            PrintItems(c, resp);
            return absl::OkStatus();
          }};
}

Command Models() {
  return {"recommend", "models", "the model versions the server holds", "", {},
          [](Context& c) -> absl::Status {
            pb::ListModelsResponse resp;
            grpc::Status s = Stub(c)->ListModels(c.Call().get(), {}, &resp);
            if (!s.ok()) return RpcError(s, "models");
            if (c.json()) return PrintedJson(c, resp);
            Table t({"VERSION", "LIVE", "KIND", "ITEMS", "DIM", "CREATED", "METRICS"});
            for (const pb::ModelInfo& m : resp.models()) {
              t.Add({absl::StrCat(m.model().version()), m.live() ? "yes" : "", m.model_kind(),
                     absl::StrCat(m.num_items()), absl::StrCat(m.embedding_dim()),
                     m.created_time(), m.metrics_json().substr(0, 80)});
            }
            t.Print(c.out());
            return absl::OkStatus();
          }};
}

}  // namespace

Command Similar() {
  return {"recommend", "similar", "items like one item (\"more like this\")", "--item=KEY [--k=10]",
          {{"item", "", "the item key"}, {"k", "10", "how many items"},
           {"version", "0", "model version to pin (0: live)"}},
          [](Context& c) -> absl::Status {
            pb::SimilarItemsRequest req;
            ASSIGN_OR_RETURN(*req.mutable_item_key(), c.args().Required("item"));
            ASSIGN_OR_RETURN(int32_t k, c.args().GetInt32("k"));
            req.set_k(k);
            ASSIGN_OR_RETURN(int64_t version, c.args().GetInt("version"));
            req.mutable_model()->set_version(version);
            pb::SimilarItemsResponse resp;
            grpc::Status s = Stub(c)->SimilarItems(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "similar");
            if (c.json()) return PrintedJson(c, resp);
            c.out() << "model version " << resp.model().version() << "; items like "
                    << req.item_key() << "\n";
            PrintItemTable(c, resp.items());
            return absl::OkStatus();
          }};
}

// Users from a file: one per line, an id, a tab, the history (spaces or
// commas). Lines without a tab are a history alone.
absl::StatusOr<std::vector<std::pair<std::string, std::vector<std::string>>>> ReadUsers(
    const std::string& file) {
  ASSIGN_OR_RETURN(std::ifstream in, OpenInputFile("file", file));
  std::vector<std::pair<std::string, std::vector<std::string>>> users;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('\t', 1));
    if (line.find('\t') == std::string::npos) kv = {absl::StrCat("line", users.size() + 1), line};
    std::vector<std::string> history;
    for (absl::string_view key : absl::StrSplit(kv.second, absl::ByAnyChar(" ,"), absl::SkipEmpty())) {
      history.emplace_back(key);
    }
    users.emplace_back(kv.first, std::move(history));
  }
  return users;
}

Command Load() {
  return {"recommend", "load",
          "a bounded closed-loop load: N clients, M requests in all; fails if any request fails",
          "--file=users.tsv [--clients=8] [--requests=1000] [--k=10]",
          {{"file", "", "one user per line: an id, a tab, the history (spaces or commas)"},
           {"clients", "8", "concurrent clients, each one request at a time (1..256)"},
           {"requests", "1000", "requests in all, users taken round-robin (1..10000000)"},
           {"k", "10", "items per request"},
           {"version", "0", "model version to pin (0: live)"}},
          [](Context& c) -> absl::Status {
            ASSIGN_OR_RETURN(std::string file, c.args().Required("file"));
            ASSIGN_OR_RETURN(auto users, ReadUsers(file));
            if (users.empty()) return absl::InvalidArgumentError("--file: no users in " + QuoteUserInput(file));
            ASSIGN_OR_RETURN(int64_t clients, c.args().GetInt("clients"));
            ASSIGN_OR_RETURN(int64_t requests, c.args().GetInt("requests"));
            ASSIGN_OR_RETURN(int32_t k, c.args().GetInt32("k"));
            ASSIGN_OR_RETURN(int64_t version, c.args().GetInt("version"));
            if (clients < 1 || clients > 256) {
              return absl::InvalidArgumentError(absl::StrCat("--clients: expected 1..256, got ", clients));
            }
            if (requests < 1 || requests > 10000000) {
              return absl::InvalidArgumentError(
                  absl::StrCat("--requests: expected 1..10000000, got ", requests));
            }
            std::unique_ptr<pb::Recommender::Stub> stub = Stub(c);
            std::atomic<int64_t> next{0};
            std::mutex mu;
            std::vector<double> latency_ms;  // of OK requests
            std::map<std::string, int64_t> by_code;
            std::map<int64_t, int64_t> by_version;
            std::string first_error;
            const absl::Time start = absl::Now();
            std::vector<std::thread> threads;
            for (int64_t t = 0; t < clients; ++t) {
              threads.emplace_back([&] {
                std::vector<double> mine;
                std::map<std::string, int64_t> codes;
                std::map<int64_t, int64_t> versions;
                std::string error;
                for (int64_t i = next++; i < requests; i = next++) {
                  const auto& user = users[i % users.size()];
                  pb::RecommendRequest req;
                  for (const std::string& h : user.second) req.add_history(h);
                  req.set_k(k);
                  req.mutable_model()->set_version(version);
                  pb::RecommendResponse resp;
                  const absl::Time t0 = absl::Now();
                  grpc::Status s = stub->Recommend(c.Call().get(), req, &resp);
                  const double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
                  const absl::Status status = RpcError(s, absl::StrCat("user ", user.first));
                  ++codes[absl::StatusCodeToString(status.code())];
                  if (s.ok()) {
                    mine.push_back(ms);
                    ++versions[resp.model().version()];
                  } else if (error.empty()) {
                    error = std::string(status.message());
                  }
                }
                std::lock_guard<std::mutex> lock(mu);
                latency_ms.insert(latency_ms.end(), mine.begin(), mine.end());
                for (const auto& [code, n] : codes) by_code[code] += n;
                for (const auto& [v, n] : versions) by_version[v] += n;
                if (first_error.empty()) first_error = error;
              });
            }
            for (std::thread& t : threads) t.join();
            const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
            std::sort(latency_ms.begin(), latency_ms.end());
            auto quantile = [&](double q) {
              if (latency_ms.empty()) return 0.0;
              return latency_ms[std::min(latency_ms.size() - 1,
                                         static_cast<size_t>(q * latency_ms.size()))];
            };
            const int64_t ok = static_cast<int64_t>(latency_ms.size());
            if (c.json()) {
              nlohmann::json j = {{"requests", requests}, {"ok", ok}, {"failed", requests - ok},
                                  {"clients", clients}, {"seconds", seconds},
                                  {"requests_per_second", requests / std::max(seconds, 1e-9)},
                                  {"p50_ms", quantile(0.5)}, {"p99_ms", quantile(0.99)},
                                  {"max_ms", latency_ms.empty() ? 0.0 : latency_ms.back()},
                                  {"codes", by_code}, {"first_error", first_error}};
              nlohmann::json versions = nlohmann::json::object();
              for (const auto& [v, n] : by_version) versions[std::to_string(v)] = n;
              j["versions"] = versions;
              c.out() << j.dump() << "\n";
            } else {
              Table t({"REQUESTS", "OK", "FAILED", "CLIENTS", "REQ/S", "P50 MS", "P99 MS", "MAX MS"});
              t.Add({absl::StrCat(requests), absl::StrCat(ok), absl::StrCat(requests - ok),
                     absl::StrCat(clients), absl::StrFormat("%.0f", requests / std::max(seconds, 1e-9)),
                     absl::StrFormat("%.2f", quantile(0.5)), absl::StrFormat("%.2f", quantile(0.99)),
                     absl::StrFormat("%.2f", latency_ms.empty() ? 0.0 : latency_ms.back())});
              t.Print(c.out());
              for (const auto& [v, n] : by_version) c.out() << "model version " << v << ": " << n << " answers\n";
            }
            if (ok < requests) {
              std::string codes;
              for (const auto& [code, n] : by_code) absl::StrAppend(&codes, codes.empty() ? "" : ", ", code, " ", n);
              return absl::UnavailableError(absl::StrCat(requests - ok, " of ", requests,
                                                         " requests failed (", codes,
                                                         "); first: ", first_error));
            }
            return absl::OkStatus();
          }};
}

Command Batch() {
  return {"recommend", "batch", "recommendations for many users from a file, one call",
          "--file=users.tsv (user<TAB>item item ... per line) [--k=10]",
          {{"file", "", "one user per line: an id, a tab, the history (spaces or commas)"},
           {"k", "10", "items per user"}},
          [](Context& c) -> absl::Status {
            ASSIGN_OR_RETURN(std::string file, c.args().Required("file"));
            ASSIGN_OR_RETURN(auto read, ReadUsers(file));
            ASSIGN_OR_RETURN(int32_t k, c.args().GetInt32("k"));
            pb::RecommendBatchRequest req;
            std::vector<std::string> users;
            for (const auto& [user, history] : read) {
              users.push_back(user);
              pb::RecommendRequest* r = req.add_users();
              r->set_k(k);
              for (const std::string& key : history) r->add_history(key);
            }
            pb::RecommendBatchResponse resp;
            grpc::Status s = Stub(c)->RecommendBatch(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "batch");
            if (c.json()) return PrintedJson(c, resp);
            int failed = 0;
            for (int i = 0; i < resp.results_size(); ++i) {
              const pb::RecommendBatchResult& r = resp.results(i);
              c.out() << "user " << users[i] << ": ";
              if (r.code() != 0) {
                ++failed;
                c.out() << absl::StatusCodeToString(static_cast<absl::StatusCode>(r.code())) << ": "
                        << r.message() << "\n";
                continue;
              }
              PrintItems(c, r.response());
            }
            if (failed > 0) {
              return absl::InvalidArgumentError(absl::StrCat(failed, " of ", resp.results_size(),
                                                             " users failed (see above)"));
            }
            return absl::OkStatus();
          }};
}

std::vector<Command> RecommendCommands() { return {Recommend(), Similar(), Batch(), Load(), Models()}; }

}  // namespace recctl
}  // namespace recsys
