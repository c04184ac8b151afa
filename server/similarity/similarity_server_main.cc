// similarity_server: the recsys.v1.Similarity endpoint (translation-example
// selection and image-case retrieval), its vectors in the retrieval sidecar.
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/server.h"
#include "common/flags.h"
#include "common/server_flags.h"
#include "common/status_macros.h"
#include "retrieval/client/retrieval_client.h"
#include "server/similarity/similarity_service.h"
#include "server/similarity/similarity_store.h"

ABSL_FLAG(std::string, retrieval, "127.0.0.1:50051", "The retrieval sidecar (host:port).");
ABSL_FLAG(std::string, state_dir, "", "Collections' records and fitted encoder states (required).");
ABSL_FLAG(int, max_message_mb, 64, "Largest gRPC message, MiB (a batch of images).");
ABSL_FLAG(int, max_sentence_kb, 64, "Largest source/target sentence, KiB.");
ABSL_FLAG(int, max_image_mb, 16, "Largest encoded image, MiB.");
ABSL_FLAG(int, max_long_calls, 4,
          "CreateCollection, Publish and Evaluate calls (each on a thread of its own) run at "
          "once, 1..256; more are refused with RESOURCE_EXHAUSTED.");
ABSL_FLAG(bool, unsafe_skip_staging_fsync, false,
          "Benchmarks only: do not fdatasync the staging log, so a crash of the machine can "
          "lose acknowledged Index batches (a kill -9 of the process does not).");

namespace recsys {
namespace {

absl::Status Run() {
  // The sizes were shifted into bytes unchecked: 0 or a negative refused
  // every sentence or image, --max_message_mb=100000 overflowed an int.
  const int max_long_calls = absl::GetFlag(FLAGS_max_long_calls);
  RETURN_IF_ERROR(CheckFlagRanges({
      {"max_message_mb", absl::GetFlag(FLAGS_max_message_mb), 1, 2047},
      {"max_sentence_kb", absl::GetFlag(FLAGS_max_sentence_kb), 1, 65536},
      {"max_image_mb", absl::GetFlag(FLAGS_max_image_mb), 1, 1024},
      {"max_long_calls", max_long_calls, 1, 256},
  }));
  RetrievalClient::Options co;
  co.target = absl::GetFlag(FLAGS_retrieval);
  co.deadline = absl::Seconds(60);
  co.stream_deadline = absl::Minutes(30);
  ASSIGN_OR_RETURN(std::unique_ptr<RetrievalClient> retrieval, RetrievalClient::Create(co));

  similarity::SimilarityStoreOptions so;
  so.state_dir = absl::GetFlag(FLAGS_state_dir);
  so.max_sentence_bytes = int64_t{absl::GetFlag(FLAGS_max_sentence_kb)} << 10;
  so.max_image_bytes = int64_t{absl::GetFlag(FLAGS_max_image_mb)} << 20;
  so.sync_staging_log = !absl::GetFlag(FLAGS_unsafe_skip_staging_fsync);
  if (!so.sync_staging_log) LOG(WARNING) << "--unsafe_skip_staging_fsync: staged batches are not fdatasync'd";
  ASSIGN_OR_RETURN(std::unique_ptr<similarity::SimilarityStore> store,
                   similarity::SimilarityStore::Create(so, retrieval.get()));
  similarity::SimilarityService service(store.get(), max_long_calls);

  ServerOptions options = ServerOptionsFromFlags();
  options.max_receive_message_bytes = absl::GetFlag(FLAGS_max_message_mb) << 20;
  options.max_send_message_bytes = absl::GetFlag(FLAGS_max_message_mb) << 20;
  options.health_service_names = {"recsys.v1.Similarity"};
  ASSIGN_OR_RETURN(std::unique_ptr<ServiceServer> server,
                   ServiceServer::Create(options, {&service}));
  // Serving from the start: collections are created through the endpoint.
  server->SetServing(true);
  server->Wait();
  return absl::OkStatus();
}

}  // namespace
}  // namespace recsys

int main(int argc, char** argv) {
  recsys::BlockTerminationSignals();
  absl::ParseCommandLine(argc, argv);
  absl::Status s = recsys::Run();
  if (!s.ok()) {
    LOG(ERROR) << s;
    return 1;
  }
  return 0;
}
