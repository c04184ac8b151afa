// retrieval_cli: a small command-line client for the retrieval sidecar.
//
//   retrieval_cli --target=127.0.0.1:PORT create --collection=items --dim=64
//       [--metric=ip|l2|cosine] [--factory=Flat]
//   retrieval_cli ... upsert --collection=items --file=entries.tsv [--batch=1000]
//       (lines: key<TAB>v1,v2,...[<TAB>field=value;field=value])
//   retrieval_cli ... delete --collection=items --keys=a,b
//   retrieval_cli ... get --collection=items --keys=a,b [--version=N]
//       [--staged] [--with_vectors]
//   retrieval_cli ... publish --collection=items [--version=N] [--nowait]
//   retrieval_cli ... rollback --collection=items --version=N
//   retrieval_cli ... search --collection=items (--vector=v1,v2,... | --key=K)
//       [--k=10] [--version=N] [--exclude=a,b] [--filter=field=value]
//       [--nprobe=N] [--ef_search=N]
//   retrieval_cli ... describe|versions|drop --collection=items
//   retrieval_cli ... list
//
// Prints results as text (search: "key<TAB>score" per hit); exits non-zero
// with the gRPC status on failure.
#include <fstream>
#include <functional>
#include <map>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "proto/retrieval.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "Server address.");
ABSL_FLAG(std::string, collection, "", "Collection name.");
ABSL_FLAG(int, dim, 0, "create: dimension.");
ABSL_FLAG(std::string, metric, "ip", "create: ip, l2 or cosine.");
ABSL_FLAG(std::string, factory, "Flat", "create: FAISS index_factory string.");
ABSL_FLAG(std::string, file, "", "upsert: TSV file of entries.");
ABSL_FLAG(int, batch, 1000, "upsert: entries per stream message.");
ABSL_FLAG(std::string, keys, "", "delete/get: comma-separated keys.");
ABSL_FLAG(bool, staged, false, "get: read acknowledged, unpublished writes.");
ABSL_FLAG(bool, with_vectors, false, "get: include the stored vectors.");
ABSL_FLAG(int64_t, version, 0, "publish/rollback/search: version (0: next/live).");
ABSL_FLAG(bool, nowait, false, "publish: return once the build started.");
ABSL_FLAG(std::string, vector, "", "search: comma-separated query vector.");
ABSL_FLAG(std::string, key, "", "search: query by a stored key.");
ABSL_FLAG(int, k, 10, "search: results per query.");
ABSL_FLAG(std::string, exclude, "", "search: comma-separated keys to leave out.");
ABSL_FLAG(std::string, filter, "", "search: field=value[;field=value] payload filter.");
ABSL_FLAG(int, nprobe, 0, "search: IVF nprobe.");
ABSL_FLAG(int, ef_search, 0, "search: HNSW efSearch.");
ABSL_FLAG(int, deadline_ms, 60000, "Per-call deadline.");

namespace pb = ::recsys::v1;

namespace {

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms)));
  return ctx;
}

int Report(const grpc::Status& s, const google::protobuf::Message* m = nullptr) {
  if (!s.ok()) {
    std::cerr << "error: " << s.error_code() << " " << s.error_message() << "\n";
    return 1;
  }
  if (m != nullptr) {
    std::string text;
    google::protobuf::TextFormat::PrintToString(*m, &text);
    std::cout << text;
  }
  return 0;
}

bool ParseFloats(absl::string_view s, google::protobuf::RepeatedField<float>* out) {
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    float f;
    if (!absl::SimpleAtof(part, &f)) return false;
    out->Add(f);
  }
  return true;
}

void ParsePayload(absl::string_view s, google::protobuf::Map<std::string, std::string>* out) {
  for (absl::string_view kv : absl::StrSplit(s, ';', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    (*out)[p.first] = p.second;
  }
}

int Upsert(pb::Retrieval::Stub& stub) {
  std::ifstream in(absl::GetFlag(FLAGS_file));
  if (!in) {
    std::cerr << "error: cannot read --file=" << absl::GetFlag(FLAGS_file) << "\n";
    return 1;
  }
  auto ctx = Context();
  pb::UpsertResponse resp;
  auto writer = stub.Upsert(ctx.get(), &resp);
  pb::UpsertRequest req;
  req.set_collection(absl::GetFlag(FLAGS_collection));
  std::string line;
  int64_t line_no = 0;
  int64_t sent = 0;
  auto flush = [&]() {
    sent += req.entries_size();
    bool ok = req.entries_size() == 0 || writer->Write(req);
    req.clear_entries();
    return ok;
  };
  bool ok = true;
  while (ok && std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    std::vector<absl::string_view> cols = absl::StrSplit(line, '\t');
    pb::Entry* e = req.add_entries();
    e->set_key(std::string(cols[0]));
    if (cols.size() < 2 ||
        !ParseFloats(cols[1], e->mutable_vector()->mutable_values())) {
      std::cerr << "error: line " << line_no << ": expected key<TAB>floats\n";
      return 1;
    }
    if (cols.size() > 2) ParsePayload(cols[2], e->mutable_payload());
    if (req.entries_size() >= absl::GetFlag(FLAGS_batch)) ok = flush();
  }
  if (ok) flush();
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  // An OK stream must have applied everything sent: check, never assume.
  if (status.ok() && resp.upserted() != sent) {
    std::cerr << "error: sent " << sent << " entries, the server applied "
              << resp.upserted() << "\n";
    return 1;
  }
  return Report(status, &resp);
}

int Search(pb::Retrieval::Stub& stub) {
  pb::SearchRequest req;
  req.set_collection(absl::GetFlag(FLAGS_collection));
  req.set_k(absl::GetFlag(FLAGS_k));
  req.set_version(absl::GetFlag(FLAGS_version));
  req.set_include_payload(true);
  if (!absl::GetFlag(FLAGS_key).empty()) {
    req.add_queries()->set_key(absl::GetFlag(FLAGS_key));
  } else if (!ParseFloats(absl::GetFlag(FLAGS_vector),
                          req.add_queries()->mutable_vector()->mutable_values())) {
    std::cerr << "error: --vector: expected comma-separated floats\n";
    return 1;
  }
  for (absl::string_view k :
       absl::StrSplit(absl::GetFlag(FLAGS_exclude), ',', absl::SkipEmpty())) {
    req.add_exclude_keys(std::string(k));
  }
  ParsePayload(absl::GetFlag(FLAGS_filter), req.mutable_payload_filter());
  req.mutable_params()->set_nprobe(absl::GetFlag(FLAGS_nprobe));
  req.mutable_params()->set_ef_search(absl::GetFlag(FLAGS_ef_search));
  pb::SearchResponse resp;
  auto ctx = Context();
  grpc::Status s = stub.Search(ctx.get(), req, &resp);
  if (!s.ok()) return Report(s);
  std::cout << "version\t" << resp.version() << "\n";
  for (const auto& hit : resp.results(0).hits()) {
    std::cout << hit.key() << "\t" << hit.score() << "\n";
  }
  return 0;
}

// --keys as a list: comma-separated, empty items dropped.
google::protobuf::RepeatedPtrField<std::string> KeysFlag() {
  google::protobuf::RepeatedPtrField<std::string> keys;
  for (absl::string_view k :
       absl::StrSplit(absl::GetFlag(FLAGS_keys), ',', absl::SkipEmpty())) {
    *keys.Add() = std::string(k);
  }
  return keys;
}

int CmdCreate(pb::Retrieval::Stub* stub) {
  const std::string collection = absl::GetFlag(FLAGS_collection);
  auto ctx = Context();
  pb::CreateCollectionRequest req;
  auto* c = req.mutable_config();
  c->set_name(collection);
  c->set_dimension(absl::GetFlag(FLAGS_dim));
  const std::string m = absl::GetFlag(FLAGS_metric);
  c->set_metric(m == "ip"       ? pb::METRIC_INNER_PRODUCT
                : m == "l2"     ? pb::METRIC_L2
                : m == "cosine" ? pb::METRIC_COSINE
                                : pb::METRIC_UNSPECIFIED);
  c->set_index_factory(absl::GetFlag(FLAGS_factory));
  pb::CreateCollectionResponse resp;
  return Report(stub->CreateCollection(ctx.get(), req, &resp), &resp);
}

int CmdDelete(pb::Retrieval::Stub* stub) {
  const std::string collection = absl::GetFlag(FLAGS_collection);
  auto ctx = Context();
  pb::DeleteRequest req;
  req.set_collection(collection);
  *req.mutable_keys() = KeysFlag();
  pb::DeleteResponse resp;
  return Report(stub->Delete(ctx.get(), req, &resp), &resp);
}

int CmdGet(pb::Retrieval::Stub* stub) {
  const std::string collection = absl::GetFlag(FLAGS_collection);
  auto ctx = Context();
  pb::GetRequest req;
  req.set_collection(collection);
  *req.mutable_keys() = KeysFlag();
  req.set_version(absl::GetFlag(FLAGS_version));
  req.set_staged(absl::GetFlag(FLAGS_staged));
  req.set_include_vectors(absl::GetFlag(FLAGS_with_vectors));
  pb::GetResponse resp;
  return Report(stub->Get(ctx.get(), req, &resp), &resp);
}

int CmdPublish(pb::Retrieval::Stub* stub) {
  const std::string collection = absl::GetFlag(FLAGS_collection);
  auto ctx = Context();
  pb::PublishRequest req;
  req.set_collection(collection);
  req.set_version(absl::GetFlag(FLAGS_version));
  req.set_wait(!absl::GetFlag(FLAGS_nowait));
  pb::PublishResponse resp;
  return Report(stub->Publish(ctx.get(), req, &resp), &resp);
}

int CmdRollback(pb::Retrieval::Stub* stub) {
  const std::string collection = absl::GetFlag(FLAGS_collection);
  auto ctx = Context();
  pb::RollbackRequest req;
  req.set_collection(collection);
  req.set_version(absl::GetFlag(FLAGS_version));
  pb::RollbackResponse resp;
  return Report(stub->Rollback(ctx.get(), req, &resp), &resp);
}

int CmdDescribe(pb::Retrieval::Stub* stub) {
  const std::string collection = absl::GetFlag(FLAGS_collection);
  auto ctx = Context();
  pb::DescribeCollectionRequest req;
  req.set_collection(collection);
  pb::DescribeCollectionResponse resp;
  return Report(stub->DescribeCollection(ctx.get(), req, &resp), &resp);
}

int CmdVersions(pb::Retrieval::Stub* stub) {
  const std::string collection = absl::GetFlag(FLAGS_collection);
  auto ctx = Context();
  pb::ListVersionsRequest req;
  req.set_collection(collection);
  pb::ListVersionsResponse resp;
  return Report(stub->ListVersions(ctx.get(), req, &resp), &resp);
}

int CmdDrop(pb::Retrieval::Stub* stub) {
  const std::string collection = absl::GetFlag(FLAGS_collection);
  auto ctx = Context();
  pb::DropCollectionRequest req;
  req.set_collection(collection);
  pb::DropCollectionResponse resp;
  return Report(stub->DropCollection(ctx.get(), req, &resp), &resp);
}

int CmdList(pb::Retrieval::Stub* stub) {
  const std::string collection = absl::GetFlag(FLAGS_collection);
  auto ctx = Context();
  pb::ListCollectionsRequest req;
  pb::ListCollectionsResponse resp;
  return Report(stub->ListCollections(ctx.get(), req, &resp), &resp);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args = recsys::ParseCommandLineWithHelp(argc, argv, "A command-line client for the retrieval sidecar.\n  retrieval_cli --target=127.0.0.1:PORT create|upsert|delete|get|publish|rollback|search|... --collection=NAME");
  const std::map<std::string, std::function<int(pb::Retrieval::Stub*)>> commands = {
      {"upsert", [](pb::Retrieval::Stub* s) { return Upsert(*s); }},
      {"search", [](pb::Retrieval::Stub* s) { return Search(*s); }},
      {"create", CmdCreate},
      {"delete", CmdDelete},
      {"get", CmdGet},
      {"publish", CmdPublish},
      {"rollback", CmdRollback},
      {"describe", CmdDescribe},
      {"versions", CmdVersions},
      {"drop", CmdDrop},
      {"list", CmdList}};
  auto command = args.size() == 2 ? commands.find(args[1]) : commands.end();
  if (command == commands.end()) {
    std::cerr << (args.size() == 2 ? "unknown command: " + std::string(args[1]) + "\n" : "")
              << "usage: retrieval_cli [flags] "
                 "create|upsert|delete|get|publish|rollback|search|describe|"
                 "versions|drop|list\n";
    return 2;
  }
  auto stub = pb::Retrieval::NewStub(grpc::CreateChannel(
      absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials()));
  return command->second(stub.get());
}
