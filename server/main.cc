// recommendation_server: serves recsys.v1.Recommender.
//   recommendation_server --models_dir=run/models --retrieval=127.0.0.1:50051
#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/process_tuning.h"
#include "common/server.h"
#include "common/server_flags.h"
#include "common/status_macros.h"
#include "retrieval/client/retrieval_client.h"
#include "server/model_registry.h"
#include "server/recommender_service.h"
#include "server/sidecar_versions.h"

ABSL_FLAG(std::string, models_dir, "", "Model version directories (trainer export).");
ABSL_FLAG(std::string, retrieval, "",
          "host:port of the retrieval sidecar, or unix:PATH when it listens on --unix_socket "
          "on this host.");
ABSL_FLAG(std::string, model_name, "items",
          "Model name; also the retrieval collection holding its items.");
ABSL_FLAG(int, versions_to_keep, 2,
          "The newest model versions kept loaded (the sidecar's live version stays loaded too).");
ABSL_FLAG(absl::Duration, poll_interval, absl::Seconds(2),
          "How often models_dir and the sidecar's versions are checked.");
ABSL_FLAG(int, torch_threads, 1, "LibTorch intra-op threads per batched forward.");
ABSL_FLAG(int, blas_threads, 1,
          "OpenBLAS threads (LibTorch's matrix products). 1: each forward's BLAS runs on "
          "its encoder thread; more workers spin between calls (common/process_tuning.h).");
ABSL_FLAG(int, max_batch_size, 32, "Users per batched user-encoder forward.");
ABSL_FLAG(absl::Duration, max_batch_wait, absl::ZeroDuration(),
          "How long an encoder worker waits for a batch to fill (0: never; batches "
          "form from what queued during the previous forward).");
ABSL_FLAG(int, encode_threads, 1, "User-encoder worker threads.");
ABSL_FLAG(int, max_batch_users, 64, "Users per RecommendBatch call.");
ABSL_FLAG(int, max_history, 1000, "Longest accepted history (longer: refused).");
ABSL_FLAG(int, max_k, 1000, "Largest k.");

namespace recsys {
namespace {

// Every numeric flag in range, before anything starts: --encode_threads=100000
// and --torch_threads=0 had ended the process in std::terminate, and
// --max_batch_size=0, --max_k=0 or --poll_interval=0s started a server that
// could not answer (or spun).
absl::Status CheckFlags() {
  RETURN_IF_ERROR(CheckFlagRanges({
      {"torch_threads", absl::GetFlag(FLAGS_torch_threads), 1, 256},
      {"blas_threads", absl::GetFlag(FLAGS_blas_threads), 1, 256},
      {"encode_threads", absl::GetFlag(FLAGS_encode_threads), 1, 256},
      {"max_batch_size", absl::GetFlag(FLAGS_max_batch_size), 1, 4096},
      {"max_batch_users", absl::GetFlag(FLAGS_max_batch_users), 1, 100000},
      {"max_history", absl::GetFlag(FLAGS_max_history), 1, 1000000},
      {"max_k", absl::GetFlag(FLAGS_max_k), 1, 100000},
      {"versions_to_keep", absl::GetFlag(FLAGS_versions_to_keep), 1, 1000},
  }));
  const absl::Duration wait = absl::GetFlag(FLAGS_max_batch_wait);
  if (wait < absl::ZeroDuration() || wait > absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_batch_wait: expected 0s..1s, got ", absl::FormatDuration(wait)));
  }
  const absl::Duration poll = absl::GetFlag(FLAGS_poll_interval);
  if (poll < absl::Milliseconds(10) || poll > absl::Hours(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--poll_interval: expected 10ms..1h, got ", absl::FormatDuration(poll)));
  }
  return absl::OkStatus();
}

absl::Status Run() {
  const std::string model_name = absl::GetFlag(FLAGS_model_name);
  if (absl::GetFlag(FLAGS_models_dir).empty() || absl::GetFlag(FLAGS_retrieval).empty()) {
    return absl::InvalidArgumentError("--models_dir and --retrieval are required");
  }
  RETURN_IF_ERROR(CheckFlags());
  torch::set_num_threads(absl::GetFlag(FLAGS_torch_threads));
  SetBlasThreads(absl::GetFlag(FLAGS_blas_threads));
  RetrievalClient::Options co;
  co.target = absl::GetFlag(FLAGS_retrieval);
  co.deadline = absl::Seconds(2);
  ASSIGN_OR_RETURN(std::unique_ptr<RetrievalClient> retrieval, RetrievalClient::Create(co));

  std::atomic<ServiceServer*> server_ptr{nullptr};
  ModelRegistry::Options ro;
  ro.models_dir = absl::GetFlag(FLAGS_models_dir);
  ro.versions_to_keep = absl::GetFlag(FLAGS_versions_to_keep);
  ro.poll_interval = absl::GetFlag(FLAGS_poll_interval);
  ro.servable = SidecarVersions(retrieval.get(), model_name);
  ro.on_change = [&server_ptr](int64_t live) {
    if (ServiceServer* s = server_ptr.load()) s->SetServing(live != 0);
  };
  ASSIGN_OR_RETURN(std::unique_ptr<ModelRegistry> registry, ModelRegistry::Create(ro));

  RecommenderService::Options so;
  so.model_name = model_name;
  so.max_k = absl::GetFlag(FLAGS_max_k);
  so.max_history = absl::GetFlag(FLAGS_max_history);
  so.max_batch_users = absl::GetFlag(FLAGS_max_batch_users);
  so.batching.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  so.batching.max_wait = absl::GetFlag(FLAGS_max_batch_wait);
  so.batching.num_threads = absl::GetFlag(FLAGS_encode_threads);
  RecommenderService service(so, registry.get(), retrieval->stub());

  ServerOptions options = ServerOptionsFromFlags();
  options.health_service_names = {"recsys.v1.Recommender"};
  ASSIGN_OR_RETURN(std::unique_ptr<ServiceServer> server,
                   ServiceServer::Create(options, {&service}));
  server_ptr = server.get();
  server->SetServing(registry->live_version() != 0);
  server->Wait();
  server_ptr = nullptr;
  return absl::OkStatus();
}

}  // namespace
}  // namespace recsys

int main(int argc, char** argv) {
  recsys::BlockTerminationSignals();
  recsys::ParseCommandLineWithHelp(argc, argv, "Serves recsys.v1.Recommender.\n  recommendation_server --models_dir=run/models --retrieval=127.0.0.1:50051");
  recsys::DisableMutexDeadlockDetection();
  absl::Status s = recsys::Run();
  if (!s.ok()) {
    LOG(ERROR) << s;
    return 1;
  }
  return 0;
}
