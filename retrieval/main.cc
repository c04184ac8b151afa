// retrieval_server: the retrieval sidecar. Parses flags into Options,
// starts the gRPC server (NOT_SERVING), restores every collection from
// --data_dir, then serves until SIGTERM/SIGINT.

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/process_tuning.h"
#include "common/server.h"
#include "common/server_flags.h"
#include "common/status_macros.h"
#include "retrieval/collection_store.h"
#include "retrieval/malloc_tuning.h"
#include "retrieval/retrieval_service.h"

ABSL_FLAG(std::string, data_dir, "", "Where collections live (required).");
ABSL_FLAG(int, versions_to_keep, 3, "Loaded versions per collection besides the live one.");
ABSL_FLAG(int, build_threads, 0,
          "OpenMP threads of an index build (0: all cores but one, at least 1).");
ABSL_FLAG(int, build_nice, 10,
          "Nice value (0..19) of index-build threads, so searches win the CPU.");
ABSL_FLAG(int, max_batch_size, 64, "Most queries per batched FAISS call.");
ABSL_FLAG(absl::Duration, max_batch_wait, absl::ZeroDuration(),
          "How long a batch may wait to fill (0: never wait; batches form under load).");
ABSL_FLAG(int, search_threads, 1,
          "Threads running batched searches (1 lets batches grow largest on small machines).");
ABSL_FLAG(int, faiss_blas_threshold, 2,
          "FAISS's own exact searches (e.g. IVF coarse quantizers) of at least this "
          "many queries use BLAS (0: FAISS default 20). Flat collections use the "
          "sidecar's kernels below 32 queries regardless.");
ABSL_FLAG(int, blas_threads, 1,
          "OpenBLAS threads (FAISS's BLAS searches, k-means training). 1: each call runs "
          "on its caller's thread; more workers spin between calls and slow the gRPC "
          "threads beside them (common/process_tuning.h).");
ABSL_FLAG(int, malloc_arena_max, 2,
          "glibc malloc arenas (M_ARENA_MAX; 0: glibc default of 8 per core). "
          "Few arenas keep RSS close to what the collections hold.");
ABSL_FLAG(int, max_message_mb, 64, "Largest gRPC message, MiB.");
ABSL_FLAG(int64_t, max_build_seconds, 6 * 3600,
          "Longest an index build may run; one over it fails its version.");
ABSL_FLAG(int64_t, max_build_mb, 0,
          "Estimated peak MiB one index build may hold (0: half the RAM); a "
          "build over it fails its version before it starts.");

namespace recsys {
namespace retrieval {
namespace {

// "recsys.v1.Retrieval/collections" is NOT_SERVING while a collection is
// DEGRADED or FAILED (an operator must act); "" and "recsys.v1.Retrieval"
// stay SERVING, so liveness probes do not restart a pod that serves every
// other collection.
constexpr char kCollectionsHealth[] = "recsys.v1.Retrieval/collections";

RetrievalService::Options ServiceOptionsFromFlags() {
  RetrievalService::Options o;
  o.batching.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  o.batching.max_wait = absl::GetFlag(FLAGS_max_batch_wait);
  o.batching.num_threads = absl::GetFlag(FLAGS_search_threads);
  o.faiss_blas_threshold = absl::GetFlag(FLAGS_faiss_blas_threshold);
  return o;
}

// The flags the options below do not check themselves, before anything
// uses them: --max_message_mb=100000 overflowed an int when shifted into
// bytes, 0 refused every call; a negative --max_build_seconds failed every
// build; --blas_threads and --malloc_arena_max went to the libraries as given.
absl::Status CheckFlags() {
  return CheckFlagRanges({
      {"blas_threads", absl::GetFlag(FLAGS_blas_threads), 1, 256},
      {"malloc_arena_max", absl::GetFlag(FLAGS_malloc_arena_max), 0, 1024},
      {"max_message_mb", absl::GetFlag(FLAGS_max_message_mb), 1, 2047},
      {"max_build_seconds", absl::GetFlag(FLAGS_max_build_seconds), 1, int64_t{30} * 24 * 3600},
      {"max_build_mb", absl::GetFlag(FLAGS_max_build_mb), 0, int64_t{1} << 30},
  });
}

CollectionStore::Options StoreOptionsFromFlags() {
  CollectionStore::Options o;
  o.data_dir = absl::GetFlag(FLAGS_data_dir);
  o.versions_to_keep = absl::GetFlag(FLAGS_versions_to_keep);
  o.build_threads = absl::GetFlag(FLAGS_build_threads);
  o.build_nice = absl::GetFlag(FLAGS_build_nice);
  o.max_build_time = absl::Seconds(absl::GetFlag(FLAGS_max_build_seconds));
  o.max_build_bytes = absl::GetFlag(FLAGS_max_build_mb) << 20;
  return o;
}

absl::Status Run() {
  ASSIGN_OR_RETURN(std::unique_ptr<RetrievalService> service,
                   RetrievalService::Create(ServiceOptionsFromFlags()));
  ServerOptions server_options = ServerOptionsFromFlags({"recsys.v1.Retrieval", kCollectionsHealth});
  server_options.max_receive_message_bytes = absl::GetFlag(FLAGS_max_message_mb) << 20;
  server_options.max_send_message_bytes = absl::GetFlag(FLAGS_max_message_mb) << 20;
  ASSIGN_OR_RETURN(std::unique_ptr<ServiceServer> server,
                   ServiceServer::Create(server_options, {service.get()}));
  const CollectionStore::Options store_options = StoreOptionsFromFlags();
  absl::StatusOr<std::unique_ptr<CollectionStore>> store = CollectionStore::Open(store_options);
  if (!store.ok()) {
    return absl::Status(store.status().code(), absl::StrCat("cannot restore ", store_options.data_dir,
                                                            ": ", store.status().message()));
  }
  service->SetStore(*std::move(store));
  server->SetServing(true);
  const std::vector<std::string> unhealthy = service->UnhealthyCollections();
  server->SetServing(kCollectionsHealth, unhealthy.empty());
  for (const std::string& name : unhealthy) {
    LOG(ERROR) << "collection '" << name << "' is DEGRADED or FAILED: see DescribeCollection";
  }
  LOG(INFO) << "retrieval sidecar serving on " << server->grpc_target();
  server->Wait();
  return absl::OkStatus();
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys

int main(int argc, char** argv) {
  recsys::BlockTerminationSignals();
  recsys::ParseCommandLineWithHelp(argc, argv, "The retrieval sidecar (versioned FAISS collections over gRPC).\n  retrieval_server --data_dir=var/retrieval --address=127.0.0.1:50051");
  if (absl::Status flags = recsys::retrieval::CheckFlags(); !flags.ok()) {
    LOG(ERROR) << flags;
    return 1;
  }
  recsys::retrieval::ConfigureMalloc(absl::GetFlag(FLAGS_malloc_arena_max));
  recsys::SetBlasThreads(absl::GetFlag(FLAGS_blas_threads));
  recsys::DisableMutexDeadlockDetection();
  absl::Status s = recsys::retrieval::Run();
  if (!s.ok()) {
    LOG(ERROR) << s;
    return 1;
  }
  return 0;
}
