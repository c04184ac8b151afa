// recctl recommend ...: the recommendation server.
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "clients/recctl/recctl.h"
#include "common/status_macros.h"
#include "common/user_input.h"
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
    std::ifstream in(file);
    if (!in) return absl::NotFoundError(absl::StrCat("--history_file: cannot read ", QuoteUserInput(file)));
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
            ASSIGN_OR_RETURN(int64_t k, c.args().GetInt("k"));
            req.set_k(static_cast<int32_t>(k));
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
            ASSIGN_OR_RETURN(int64_t k, c.args().GetInt("k"));
            req.set_k(static_cast<int32_t>(k));
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

Command Batch() {
  return {"recommend", "batch", "recommendations for many users from a file, one call",
          "--file=users.tsv (user<TAB>item item ... per line) [--k=10]",
          {{"file", "", "one user per line: an id, a tab, the history (spaces or commas)"},
           {"k", "10", "items per user"}},
          [](Context& c) -> absl::Status {
            ASSIGN_OR_RETURN(std::string file, c.args().Required("file"));
            std::ifstream in(file);
            if (!in) return absl::NotFoundError(absl::StrCat("--file: cannot read ", QuoteUserInput(file)));
            ASSIGN_OR_RETURN(int64_t k, c.args().GetInt("k"));
            pb::RecommendBatchRequest req;
            std::vector<std::string> users;
            std::string line;
            while (std::getline(in, line)) {
              if (line.empty()) continue;
              std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('\t', 1));
              users.push_back(kv.first);
              pb::RecommendRequest* r = req.add_users();
              r->set_k(static_cast<int32_t>(k));
              for (absl::string_view key : absl::StrSplit(kv.second, absl::ByAnyChar(" ,"), absl::SkipEmpty())) {
                r->add_history(std::string(key));
              }
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

std::vector<Command> RecommendCommands() { return {Recommend(), Similar(), Batch(), Models()}; }

}  // namespace recctl
}  // namespace recsys
