// recctl collections ...: the retrieval sidecar's API.
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "clients/recctl/recctl.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "nlohmann/json.hpp"
#include "proto/retrieval.grpc.pb.h"
#include "retrieval/client/retrieval_client.h"

namespace recsys {
namespace recctl {
namespace {

namespace pb = ::recsys::v1;

std::unique_ptr<pb::Retrieval::Stub> Stub(Context& c) {
  return pb::Retrieval::NewStub(c.Channel("retrieval"));
}

std::string StateName(pb::VersionState s) {
  std::string n = pb::VersionState_Name(s);
  return n.rfind("VERSION_", 0) == 0 ? n.substr(8) : n;
}

std::string MetricName(pb::Metric m) {
  switch (m) {
    case pb::METRIC_INNER_PRODUCT: return "ip";
    case pb::METRIC_L2: return "l2";
    case pb::METRIC_COSINE: return "cosine";
    default: return "?";
  }
}

absl::StatusOr<pb::Metric> ParseMetric(const std::string& m) {
  if (m == "ip") return pb::METRIC_INNER_PRODUCT;
  if (m == "l2") return pb::METRIC_L2;
  if (m == "cosine") return pb::METRIC_COSINE;
  return absl::InvalidArgumentError(
      absl::StrCat("--metric: expected ip, l2 or cosine, got ", QuoteUserInput(m)));
}

absl::Status ParseFloats(absl::string_view s, absl::string_view what,
                         google::protobuf::RepeatedField<float>* out) {
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    float f;
    if (!absl::SimpleAtof(part, &f)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": expected comma-separated numbers, got ", QuoteUserInput(part)));
    }
    out->Add(f);
  }
  if (out->empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": no numbers"));
  return absl::OkStatus();
}

void ParsePayload(absl::string_view s, google::protobuf::Map<std::string, std::string>* out) {
  for (absl::string_view kv : absl::StrSplit(s, ';', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    (*out)[p.first] = p.second;
  }
}

void PrintVersions(Context& c, const google::protobuf::RepeatedPtrField<pb::VersionInfo>& vs) {
  Table t({"VERSION", "STATE", "ENTRIES", "MEMORY", "INDEX", "CREATED", "NOTE"});
  for (const pb::VersionInfo& v : vs) {
    std::string note = v.error();
    if (v.state() == pb::VERSION_BUILDING) {
      note = absl::StrFormat("%.0f%% %s", 100 * v.progress().fraction(), v.progress().phase());
    }
    t.Add({absl::StrCat(v.version()), StateName(v.state()), absl::StrCat(v.entry_count()),
           absl::StrFormat("%.1f MB", v.memory_bytes() / 1e6), v.index_factory(),
           v.created_time(), note});
  }
  t.Print(c.out());
}

void PrintCollection(Context& c, const pb::CollectionInfo& info) {
  const pb::CollectionConfig& cfg = info.config();
  c.out() << "collection " << cfg.name() << ": dimension " << cfg.dimension() << ", metric "
          << MetricName(cfg.metric()) << ", index " << cfg.index_factory() << "\n"
          << "live version " << info.live_version() << "; staging "
          << info.staging_entry_count() << " entries (" << info.staging_pending_changes()
          << " unpublished changes)\n";
  PrintVersions(c, info.versions());
}

// Reads entries from a TSV (key<TAB>v1,v2,...[<TAB>field=value;...]) or
// JSONL ({"key": ..., "vector": [...], "payload": {...}}) file.
absl::StatusOr<std::vector<pb::Entry>> ReadEntries(const std::string& path) {
  ASSIGN_OR_RETURN(std::ifstream in, OpenInputFile("file", path));
  const bool jsonl = absl::EndsWith(path, ".jsonl") || absl::EndsWith(path, ".json");
  std::vector<pb::Entry> entries;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::string where = absl::StrCat(path, ":", line_no);
    pb::Entry e;
    if (jsonl) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("key") || !j["key"].is_string() ||
          !j.contains("vector") || !j["vector"].is_array()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": expected {\"key\": string, \"vector\": [numbers], \"payload\": {...}}"));
      }
      e.set_key(j["key"].get<std::string>());
      for (const auto& x : j["vector"]) {
        if (!x.is_number()) return absl::InvalidArgumentError(absl::StrCat(where, ": vector holds a non-number"));
        e.mutable_vector()->add_values(x.get<float>());
      }
      if (j.contains("payload") && j["payload"].is_object()) {
        for (auto it = j["payload"].begin(); it != j["payload"].end(); ++it) {
          (*e.mutable_payload())[it.key()] =
              it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
        }
      }
    } else {
      std::vector<absl::string_view> cols = absl::StrSplit(line, '\t');
      if (cols.size() < 2) return absl::InvalidArgumentError(absl::StrCat(where, ": expected key<TAB>floats"));
      e.set_key(std::string(cols[0]));
      RETURN_IF_ERROR(ParseFloats(cols[1], where, e.mutable_vector()->mutable_values()));
      if (cols.size() > 2) ParsePayload(cols[2], e.mutable_payload());
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

const FlagSpec kCollection{"collection", "", "collection name"};

Command Create() {
  return {"collections", "create", "create a collection", "--collection=NAME --dim=N",
          {kCollection, {"dim", "", "vector dimension"}, {"metric", "ip", "ip | l2 | cosine"},
           {"factory", "Flat", "FAISS index factory string"},
           {"flat_fallback", "false", "Flat when too few vectors to train", true}},
          [](Context& c) -> absl::Status {
            pb::CreateCollectionRequest req;
            auto* cfg = req.mutable_config();
            ASSIGN_OR_RETURN(*cfg->mutable_name(), c.args().Required("collection"));
            ASSIGN_OR_RETURN(int32_t dim, c.args().GetInt32("dim"));
            cfg->set_dimension(dim);
            ASSIGN_OR_RETURN(pb::Metric m, ParseMetric(c.args().Get("metric")));
            cfg->set_metric(m);
            cfg->set_index_factory(c.args().Get("factory"));
            ASSIGN_OR_RETURN(bool fallback, c.args().GetBool("flat_fallback"));
            cfg->set_flat_fallback_when_untrainable(fallback);
            pb::CreateCollectionResponse resp;
            grpc::Status s = Stub(c)->CreateCollection(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "create");
            if (c.json()) return PrintedJson(c, resp);
            PrintCollection(c, resp.info());
            return absl::OkStatus();
          }};
}

Command List() {
  return {"collections", "list", "list collections", "", {},
          [](Context& c) -> absl::Status {
            pb::ListCollectionsResponse resp;
            grpc::Status s = Stub(c)->ListCollections(c.Call().get(), {}, &resp);
            if (!s.ok()) return RpcError(s, "list");
            if (c.json()) return PrintedJson(c, resp);
            Table t({"NAME", "DIM", "METRIC", "INDEX", "LIVE", "ENTRIES", "STAGED"});
            for (const pb::CollectionInfo& i : resp.collections()) {
              int64_t live_entries = 0;
              for (const auto& v : i.versions()) {
                if (v.version() == i.live_version()) live_entries = v.entry_count();
              }
              t.Add({i.config().name(), absl::StrCat(i.config().dimension()),
                     MetricName(i.config().metric()), i.config().index_factory(),
                     absl::StrCat(i.live_version()), absl::StrCat(live_entries),
                     absl::StrCat(i.staging_entry_count())});
            }
            t.Print(c.out());
            return absl::OkStatus();
          }};
}

Command Describe() {
  return {"collections", "describe", "a collection's config and versions", "--collection=NAME",
          {kCollection},
          [](Context& c) -> absl::Status {
            pb::DescribeCollectionRequest req;
            ASSIGN_OR_RETURN(*req.mutable_collection(), c.args().Required("collection"));
            pb::DescribeCollectionResponse resp;
            grpc::Status s = Stub(c)->DescribeCollection(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "describe");
            if (c.json()) return PrintedJson(c, resp);
            PrintCollection(c, resp.info());
            return absl::OkStatus();
          }};
}

Command Drop() {
  return {"collections", "drop", "drop a collection and its data", "--collection=NAME",
          {kCollection},
          [](Context& c) -> absl::Status {
            pb::DropCollectionRequest req;
            ASSIGN_OR_RETURN(*req.mutable_collection(), c.args().Required("collection"));
            pb::DropCollectionResponse resp;
            grpc::Status s = Stub(c)->DropCollection(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "drop");
            if (c.json()) return PrintedJson(c, resp);
            c.out() << "dropped " << req.collection() << "\n";
            return absl::OkStatus();
          }};
}

Command Upsert() {
  return {"collections", "upsert", "stream entries from a TSV or JSONL file",
          "--collection=NAME --file=entries.tsv|.jsonl",
          {kCollection, {"file", "", "key<TAB>v1,v2,..[<TAB>f=v;..] lines, or JSON lines"},
           {"batch", "1000", "entries per stream message"}},
          [](Context& c) -> absl::Status {
            ASSIGN_OR_RETURN(std::string collection, c.args().Required("collection"));
            ASSIGN_OR_RETURN(std::string file, c.args().Required("file"));
            ASSIGN_OR_RETURN(int32_t batch, c.args().GetInt32("batch"));
            ASSIGN_OR_RETURN(std::vector<pb::Entry> entries, ReadEntries(file));
            auto stub = Stub(c);
            RetrievalClient::Options o;
            o.stream_deadline = c.deadline();
            o.upsert_batch_size = std::max(1, batch);
            RetrievalClient client(stub.get(), o);
            ProgressBar bar("upsert", static_cast<int64_t>(entries.size()));
            absl::StatusOr<int64_t> n = client.UpsertAll(
                collection, static_cast<int64_t>(entries.size()),
                [&entries](int64_t i, pb::Entry* e) { *e = entries[i]; },
                [&bar](int64_t sent, int64_t) { bar.Update(sent); });
            bar.Finish();
            if (!n.ok()) return n.status();
            if (c.json()) {
              pb::UpsertResponse r;
              r.set_upserted(*n);
              return PrintedJson(c, r);
            }
            c.out() << "upserted " << *n << " entries into " << collection << "\n";
            return absl::OkStatus();
          }};
}

Command Delete() {
  return {"collections", "delete", "delete entries by key", "--collection=NAME --keys=a,b",
          {kCollection, {"keys", "", "comma-separated keys"}},
          [](Context& c) -> absl::Status {
            pb::DeleteRequest req;
            ASSIGN_OR_RETURN(*req.mutable_collection(), c.args().Required("collection"));
            for (const std::string& k : c.args().GetList("keys")) req.add_keys(k);
            pb::DeleteResponse resp;
            grpc::Status s = Stub(c)->Delete(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "delete");
            if (c.json()) return PrintedJson(c, resp);
            c.out() << "deleted " << resp.deleted() << "\n";
            return absl::OkStatus();
          }};
}

Command Get() {
  return {"collections", "get", "entries by key", "--collection=NAME --keys=a,b",
          {kCollection, {"keys", "", "comma-separated keys"},
           {"version", "0", "version (0: live)"},
           {"staged", "false", "acknowledged, unpublished writes", true},
           {"with_vectors", "false", "print the vectors", true}},
          [](Context& c) -> absl::Status {
            pb::GetRequest req;
            ASSIGN_OR_RETURN(*req.mutable_collection(), c.args().Required("collection"));
            for (const std::string& k : c.args().GetList("keys")) req.add_keys(k);
            ASSIGN_OR_RETURN(int64_t version, c.args().GetInt("version"));
            req.set_version(version);
            ASSIGN_OR_RETURN(bool staged, c.args().GetBool("staged"));
            req.set_staged(staged);
            ASSIGN_OR_RETURN(bool vectors, c.args().GetBool("with_vectors"));
            req.set_include_vectors(vectors);
            pb::GetResponse resp;
            grpc::Status s = Stub(c)->Get(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "get");
            if (c.json()) return PrintedJson(c, resp);
            Table t({"KEY", "PAYLOAD", vectors ? "VECTOR" : ""});
            for (const pb::Entry& e : resp.entries()) {
              std::vector<std::string> kv;
              for (const auto& [f, v] : e.payload()) kv.push_back(absl::StrCat(f, "=", v));
              std::sort(kv.begin(), kv.end());
              t.Add({e.key(), absl::StrJoin(kv, ";"),
                     vectors ? absl::StrJoin(e.vector().values(), ",") : ""});
            }
            t.Print(c.out());
            if (resp.missing_keys_size() > 0) {
              c.out() << "missing: " << absl::StrJoin(resp.missing_keys(), ",") << "\n";
            }
            return absl::OkStatus();
          }};
}

Command Search() {
  return {"collections", "search", "top k by vector or by a stored key",
          "--collection=NAME (--vector=v1,v2,.. | --key=K)",
          {kCollection, {"vector", "", "comma-separated query vector"},
           {"key", "", "query by a stored entry (it is left out)"}, {"k", "10", "results"},
           {"version", "0", "version (0: live)"}, {"exclude", "", "comma-separated keys to leave out"},
           {"filter", "", "field=value[;field=value] payload filter"},
           {"nprobe", "0", "IVF nprobe"}, {"ef_search", "0", "HNSW efSearch"}},
          [](Context& c) -> absl::Status {
            pb::SearchRequest req;
            ASSIGN_OR_RETURN(*req.mutable_collection(), c.args().Required("collection"));
            ASSIGN_OR_RETURN(int32_t k, c.args().GetInt32("k"));
            req.set_k(k);
            ASSIGN_OR_RETURN(int64_t version, c.args().GetInt("version"));
            req.set_version(version);
            req.set_include_payload(true);
            if (!c.args().Get("key").empty()) {
              req.add_queries()->set_key(c.args().Get("key"));
            } else {
              RETURN_IF_ERROR(ParseFloats(c.args().Get("vector"), "--vector",
                                          req.add_queries()->mutable_vector()->mutable_values()));
            }
            for (const std::string& key : c.args().GetList("exclude")) req.add_exclude_keys(key);
            ParsePayload(c.args().Get("filter"), req.mutable_payload_filter());
            ASSIGN_OR_RETURN(int32_t nprobe, c.args().GetInt32("nprobe"));
            ASSIGN_OR_RETURN(int32_t ef, c.args().GetInt32("ef_search"));
            req.mutable_params()->set_nprobe(nprobe);
            req.mutable_params()->set_ef_search(ef);
            pb::SearchResponse resp;
            grpc::Status s = Stub(c)->Search(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "search");
            if (c.json()) return PrintedJson(c, resp);
            c.out() << "version " << resp.version() << "\n";
            Table t({"RANK", "KEY", "SCORE", "PAYLOAD"});
            int rank = 0;
            for (const auto& hit : resp.results(0).hits()) {
              std::vector<std::string> kv;
              for (const auto& [f, v] : hit.payload()) kv.push_back(absl::StrCat(f, "=", v));
              std::sort(kv.begin(), kv.end());
              t.Add({absl::StrCat(++rank), hit.key(), absl::StrFormat("%.5f", hit.score()),
                     absl::StrJoin(kv, ";")});
            }
            t.Print(c.out());
            return absl::OkStatus();
          }};
}

Command Versions() {
  return {"collections", "versions", "a collection's versions", "--collection=NAME",
          {kCollection},
          [](Context& c) -> absl::Status {
            pb::ListVersionsRequest req;
            ASSIGN_OR_RETURN(*req.mutable_collection(), c.args().Required("collection"));
            pb::ListVersionsResponse resp;
            grpc::Status s = Stub(c)->ListVersions(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "versions");
            if (c.json()) return PrintedJson(c, resp);
            c.out() << "live version " << resp.live_version() << "\n";
            PrintVersions(c, resp.versions());
            return absl::OkStatus();
          }};
}

Command Publish() {
  return {"collections", "publish", "publish the staging set as a new version",
          "--collection=NAME [--version=N]",
          {kCollection, {"version", "0", "version number (0: next)"},
           {"nowait", "false", "return once the build started", true}},
          [](Context& c) -> absl::Status {
            pb::PublishRequest req;
            ASSIGN_OR_RETURN(*req.mutable_collection(), c.args().Required("collection"));
            ASSIGN_OR_RETURN(int64_t version, c.args().GetInt("version"));
            req.set_version(version);
            ASSIGN_OR_RETURN(bool nowait, c.args().GetBool("nowait"));
            req.set_wait(!nowait);
            pb::PublishResponse resp;
            grpc::Status s = Stub(c)->Publish(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "publish");
            if (c.json()) return PrintedJson(c, resp);
            c.out() << req.collection() << " version " << resp.version().version() << ": "
                    << StateName(resp.version().state()) << ", " << resp.version().entry_count()
                    << " entries" << (resp.version().error().empty() ? "" : ": ")
                    << resp.version().error() << "\n";
            return resp.version().state() == pb::VERSION_FAILED
                       ? absl::InternalError(resp.version().error())
                       : absl::OkStatus();
          }};
}

Command Rollback() {
  return {"collections", "rollback", "make a loaded version live again",
          "--collection=NAME --version=N",
          {kCollection, {"version", "", "a loaded version"}},
          [](Context& c) -> absl::Status {
            pb::RollbackRequest req;
            ASSIGN_OR_RETURN(*req.mutable_collection(), c.args().Required("collection"));
            ASSIGN_OR_RETURN(int64_t version, c.args().GetInt("version"));
            req.set_version(version);
            pb::RollbackResponse resp;
            grpc::Status s = Stub(c)->Rollback(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "rollback");
            if (c.json()) return PrintedJson(c, resp);
            c.out() << req.collection() << " version " << resp.version().version() << " is live\n";
            return absl::OkStatus();
          }};
}

}  // namespace

std::vector<Command> CollectionCommands() {
  return {Create(), List(), Describe(), Drop(), Upsert(), Delete(), Get(),
          Search(), Versions(), Publish(), Rollback()};
}

}  // namespace recctl
}  // namespace recsys
