// publish_model: makes a trained model version servable. Streams the item
// embeddings of a version directory into the retrieval sidecar's item
// collection and publishes them as the collection version with the model's
// number, waiting until it is live (model/model_publisher.h says how, and
// what a failure leaves behind).
//
//   publish_model --retrieval=127.0.0.1:PORT --version_dir=run/models/3
//       [--items=items.tsv] [--collection=items] [--index_factory=Flat]
//       [--previous_version_dir=run/models/2]
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "common/status_macros.h"
#include "model/model_publisher.h"
#include "retrieval/client/retrieval_client.h"

ABSL_FLAG(std::string, retrieval, "", "host:port of the retrieval sidecar.");
ABSL_FLAG(std::string, version_dir, "", "Model version directory to publish.");
ABSL_FLAG(std::string, previous_version_dir, "",
          "The version it replaces; its keys missing from the new one are deleted "
          "(default: the sidecar's newest version, from the same models directory).");
ABSL_FLAG(std::string, items, "", "Optional key<TAB>title file for payloads.");
ABSL_FLAG(std::string, collection, "items", "Retrieval collection name.");
ABSL_FLAG(std::string, index_factory, "Flat", "FAISS index for a new collection.");
ABSL_FLAG(int, batch_size, 1000, "Entries per upsert message.");
ABSL_FLAG(absl::Duration, timeout, absl::Minutes(10), "Deadline of the upsert and the publish.");

namespace recsys {
namespace {

absl::Status Run() {
  RetrievalClient::Options c;
  c.target = absl::GetFlag(FLAGS_retrieval);
  c.stream_deadline = absl::GetFlag(FLAGS_timeout);
  c.upsert_batch_size = absl::GetFlag(FLAGS_batch_size);
  ASSIGN_OR_RETURN(std::unique_ptr<RetrievalClient> client, RetrievalClient::Create(c));
  PublishOptions p;
  p.collection = absl::GetFlag(FLAGS_collection);
  p.index_factory = absl::GetFlag(FLAGS_index_factory);
  p.items_table = absl::GetFlag(FLAGS_items);
  p.previous_version_dir = absl::GetFlag(FLAGS_previous_version_dir);
  ASSIGN_OR_RETURN(PublishResult r,
                   PublishModelVersion(absl::GetFlag(FLAGS_version_dir), p, client.get()));
  if (r.deleted > 0) std::cout << "deleted " << r.deleted << " items no longer in the catalog\n";
  std::cout << "upserted " << r.upserted << " items (" << r.titled << " with titles)\n"
            << "published " << p.collection << " version " << r.version << ": "
            << r.live.entry_count() << " entries, live\n";
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
