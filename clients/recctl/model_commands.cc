// recctl model ...: model version directories on disk (model/model_version.h).
//   verify:  open a version directory with every check the server makes
//            (format, checksums, embeddings against the keys) and summarise it.
//   publish: stream its item embeddings into the retrieval sidecar and make
//            them live as the collection version with the model's number
//            (model/model_publisher.h says what a failure leaves behind).
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "clients/recctl/recctl.h"
#include "common/status_macros.h"
#include "model/model_publisher.h"
#include "model/model_version.h"
#include "proto/retrieval.grpc.pb.h"
#include "retrieval/client/retrieval_client.h"

namespace recsys {
namespace recctl {
namespace {

const FlagSpec kVersionDir{"version_dir", "", "a model version directory (.../models/N)"};

Command Verify() {
  return {"model", "verify", "check a model version directory as the server would",
          "--version_dir=DIR",
          {kVersionDir},
          [](Context& c) -> absl::Status {
            ASSIGN_OR_RETURN(std::string dir, c.args().Required("version_dir"));
            ASSIGN_OR_RETURN(std::unique_ptr<ModelVersion> v, ModelVersion::Open(dir));
            ASSIGN_OR_RETURN(ItemEmbeddings items, v->ReadItemEmbeddings());
            ASSIGN_OR_RETURN(std::vector<float> popularity, v->ReadItemPopularity());
            const ModelVersionManifest& m = v->manifest();
            if (c.json()) {
              c.out() << ManifestToJson(m) << "\n";
              return absl::OkStatus();
            }
            Table t({"FIELD", "VALUE"});
            t.Add({"version", absl::StrCat(m.version)});
            t.Add({"kind", m.kind});
            if (m.parent_version > 0) t.Add({"parent", absl::StrCat(m.parent_version)});
            t.Add({"created", m.created_at});
            t.Add({"items", absl::StrFormat("%d x %d", items.keys.size(), items.dim)});
            t.Add({"popularity", popularity.empty() ? "none (no cold start)" : "yes"});
            t.Add({"files", absl::StrCat(m.files.size(), ", sizes and CRC-32C verified")});
            t.Add({"data", m.data_fingerprint});
            t.Add({"metrics", m.metrics_json.substr(0, 120)});
            t.Print(c.out());
            return absl::OkStatus();
          }};
}

Command Publish() {
  return {"model", "publish", "publish a model version's item embeddings to the sidecar",
          "--version_dir=DIR [--items=items.tsv]",
          {kVersionDir,
           {"items", "", "key<TAB>title table: titles become the entries' payload"},
           {"collection", "items", "the item collection"},
           {"index_factory", "Flat", "FAISS factory if the collection is new"},
           {"previous_version_dir", "",
            "the version it replaces: its keys missing here are deleted (default: the "
            "sidecar's newest version, from the same models directory)"},
           {"batch", "1000", "entries per stream message"}},
          [](Context& c) -> absl::Status {
            ASSIGN_OR_RETURN(std::string dir, c.args().Required("version_dir"));
            ASSIGN_OR_RETURN(int32_t batch, c.args().GetInt32("batch"));
            if (batch < 1 || batch > 100000) {
              return absl::InvalidArgumentError(
                  absl::StrCat("--batch: expected 1..100000, got ", batch));
            }
            RetrievalClient::Options o;
            o.deadline = c.deadline();
            o.stream_deadline = c.long_deadline();  // the upsert and the index build
            o.upsert_batch_size = batch;
            std::unique_ptr<v1::Retrieval::Stub> stub = v1::Retrieval::NewStub(c.Channel("retrieval"));
            RetrievalClient client(stub.get(), o);
            PublishOptions p;
            p.collection = c.args().Get("collection");
            p.index_factory = c.args().Get("index_factory");
            p.items_table = c.args().Get("items");
            p.previous_version_dir = c.args().Get("previous_version_dir");
            std::unique_ptr<ProgressBar> progress;
            p.progress = [&](int64_t sent, int64_t count) {
              if (progress == nullptr) progress = std::make_unique<ProgressBar>("upsert", count);
              progress->Update(sent);
            };
            absl::StatusOr<PublishResult> r = PublishModelVersion(dir, p, &client);
            if (progress != nullptr) progress->Finish();
            RETURN_IF_ERROR(r.status());
            if (c.json()) return PrintedJson(c, r->live);
            if (r->deleted > 0) c.out() << "deleted " << r->deleted << " items no longer in the catalog\n";
            c.out() << "upserted " << r->upserted << " items (" << r->titled << " with titles)\n"
                    << "published " << p.collection << " version " << r->version << ": "
                    << r->live.entry_count() << " entries, live\n";
            return absl::OkStatus();
          }};
}

}  // namespace

std::vector<Command> ModelCommands() { return {Verify(), Publish()}; }

}  // namespace recctl
}  // namespace recsys
