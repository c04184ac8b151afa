// publish_model: makes a trained model version servable. Streams the item
// embeddings of a version directory (trainer export) into the retrieval
// sidecar's item collection and publishes them as the collection version
// with the model's number, waiting until it is live.
//
//   publish_model --retrieval=127.0.0.1:PORT --version_dir=run/models/3
//       [--items=items.tsv] [--collection=items] [--index_factory=Flat]
//
// --items (key<TAB>title) attaches each item's title, HTML entities decoded,
// as payload "title".
// Keys of the collection's staging set that the new version no longer has
// are deleted first (from the previous version directory's item_keys.txt,
// when --previous_version_dir is given), so dropped items do not come back.
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/grpc_status.h"
#include "common/safetensors.h"
#include "common/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "proto/retrieval.grpc.pb.h"
#include "trainer/backbone/html_unescape.h"

ABSL_FLAG(std::string, retrieval, "", "host:port of the retrieval sidecar.");
ABSL_FLAG(std::string, version_dir, "", "Model version directory to publish.");
ABSL_FLAG(std::string, previous_version_dir, "",
          "The version it replaces; its keys missing from the new one are deleted.");
ABSL_FLAG(std::string, items, "", "Optional key<TAB>title file for payloads.");
ABSL_FLAG(std::string, collection, "items", "Retrieval collection name.");
ABSL_FLAG(std::string, index_factory, "Flat", "FAISS index for a new collection.");
ABSL_FLAG(int, batch_size, 1000, "Entries per upsert message.");
ABSL_FLAG(absl::Duration, timeout, absl::Minutes(10), "Deadline for the whole publish.");

namespace recsys {
namespace {

struct ItemEmbeddings {
  std::vector<std::string> keys;
  int64_t dim = 0;
  std::vector<float> values;
};

absl::StatusOr<ItemEmbeddings> ReadEmbeddings(const std::string& dir) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(
                                  JoinPath(dir, "item_embeddings.safetensors")));
  ASSIGN_OR_RETURN(TensorView emb, file->Get("embeddings"));
  if (emb.shape.size() != 2 || emb.dtype != DType::kF32) {
    return absl::DataLossError(absl::StrCat(dir, ": malformed item embeddings"));
  }
  ItemEmbeddings out;
  out.dim = emb.shape[1];
  out.values.resize(static_cast<size_t>(emb.num_elements()));
  RETURN_IF_ERROR(ReadAsFloat(emb, 0, emb.num_elements(), out.values.data()));
  absl::StatusOr<std::vector<std::string>> keys = ReadKeyTensors(*file, emb.shape[0]);
  if (!keys.ok()) {
    return absl::DataLossError(absl::StrCat(dir, ": item keys: ", keys.status().message()));
  }
  out.keys = std::move(*keys);
  return out;
}

absl::StatusOr<std::unordered_map<std::string, std::string>> ReadTitles(
    const std::string& path) {
  std::unordered_map<std::string, std::string> titles;
  if (path.empty()) return titles;
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open --items ", path));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits('\t', 1));
    // Catalog titles carry HTML entities ("&amp;"); payloads are for display.
    if (f.size() == 2) titles[f[0]] = HtmlUnescape(f[1]).substr(0, 1024);
  }
  return titles;
}

absl::Status Run() {
  const std::string dir = absl::GetFlag(FLAGS_version_dir);
  const std::string collection = absl::GetFlag(FLAGS_collection);
  int64_t version = 0;
  const std::string name = dir.substr(dir.find_last_of('/') + 1);
  if (!absl::SimpleAtoi(name, &version) || version <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--version_dir: must end in the numeric model version, got ", dir));
  }
  ASSIGN_OR_RETURN(ItemEmbeddings items, ReadEmbeddings(dir));
  ASSIGN_OR_RETURN(auto titles, ReadTitles(absl::GetFlag(FLAGS_items)));

  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_retrieval),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::Retrieval::NewStub(channel);
  const auto deadline =
      absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout));

  {  // The collection exists, with the right dimension.
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline);
    v1::CreateCollectionRequest req;
    auto* c = req.mutable_config();
    c->set_name(collection);
    c->set_dimension(static_cast<int32_t>(items.dim));
    c->set_metric(v1::METRIC_INNER_PRODUCT);
    c->set_index_factory(absl::GetFlag(FLAGS_index_factory));
    c->set_flat_fallback_when_untrainable(true);
    v1::CreateCollectionResponse resp;
    grpc::Status s = stub->CreateCollection(&ctx, req, &resp);
    if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      return FromGrpcStatus(s);
    }
  }

  if (!absl::GetFlag(FLAGS_previous_version_dir).empty()) {
    ASSIGN_OR_RETURN(ItemEmbeddings previous,
                     ReadEmbeddings(absl::GetFlag(FLAGS_previous_version_dir)));
    std::unordered_map<std::string, bool> now;
    for (const auto& k : items.keys) now[k] = true;
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline);
    v1::DeleteRequest req;
    req.set_collection(collection);
    for (const auto& k : previous.keys) {
      if (!now.count(k)) req.add_keys(k);
    }
    if (req.keys_size() > 0) {
      v1::DeleteResponse resp;
      grpc::Status s = stub->Delete(&ctx, req, &resp);
      if (!s.ok()) return FromGrpcStatus(s);
      std::cout << "deleted " << resp.deleted() << " items no longer in the catalog\n";
    }
  }

  {  // Stream the embeddings.
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline);
    v1::UpsertResponse resp;
    auto writer = stub->Upsert(&ctx, &resp);
    const int batch = absl::GetFlag(FLAGS_batch_size);
    for (size_t start = 0; start < items.keys.size(); start += batch) {
      v1::UpsertRequest req;
      req.set_collection(collection);
      for (size_t i = start; i < std::min(items.keys.size(), start + batch); ++i) {
        auto* e = req.add_entries();
        e->set_key(items.keys[i]);
        const float* v = items.values.data() + i * items.dim;
        e->mutable_vector()->mutable_values()->Add(v, v + items.dim);
        auto t = titles.find(items.keys[i]);
        if (t != titles.end()) (*e->mutable_payload())["title"] = t->second;
      }
      if (!writer->Write(req)) break;  // the server ended the stream; Finish says why
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    if (!s.ok()) return FromGrpcStatus(s);
    std::cout << "upserted " << resp.upserted() << " items in " << resp.batches()
              << " batches\n";
  }

  {  // Publish as the model's version and wait until it is live.
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline);
    v1::PublishRequest req;
    req.set_collection(collection);
    req.set_version(version);
    req.set_wait(true);
    v1::PublishResponse resp;
    grpc::Status s = stub->Publish(&ctx, req, &resp);
    if (!s.ok()) return FromGrpcStatus(s);
    if (resp.version().state() != v1::VERSION_LIVE) {
      return absl::InternalError(absl::StrCat("version ", version, " did not go live: ",
                                              resp.version().error()));
    }
    std::cout << "published " << collection << " version " << version << ": "
              << resp.version().entry_count() << " entries, live\n";
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace recsys

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(argc, argv, "Streams a model version's item embeddings into the retrieval sidecar and publishes them.\n  publish_model --retrieval=127.0.0.1:PORT --version_dir=run/models/3 [--items=items.tsv]");
  absl::Status s = recsys::Run();
  if (!s.ok()) {
    std::cerr << "publish_model: " << s << "\n";
    return 1;
  }
  return 0;
}
