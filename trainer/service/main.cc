// trainer_server: serves recsys.v1.Trainer (proto/trainer.proto).
//   trainer_server --data_dir=run/trainer --models_dir=run/models
//       --retrieval=127.0.0.1:50051 --devices=cpu --port_file=run/trainer.ports
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/server.h"
#include "common/server_flags.h"
#include "common/status_macros.h"
#include "trainer/service/job_manager.h"
#include "trainer/service/trainer_service.h"

ABSL_FLAG(std::string, data_dir, "", "Job store (jobs.sqlite) and per-job files.");
ABSL_FLAG(std::string, models_dir, "", "Model versions (default: <data_dir>/models).");
ABSL_FLAG(std::string, devices, "cpu", "Comma-separated devices, one job queue each.");
ABSL_FLAG(std::string, worker, "", "The job_worker binary (default: beside this one).");
ABSL_FLAG(int, worker_threads, 1, "CPU threads per job (>= 2: the split training step; trainer/README.md \"Threads\").");
ABSL_FLAG(std::string, retrieval, "", "host:port of the retrieval sidecar (empty: no publish).");
ABSL_FLAG(std::string, model_name, "items", "Model name = the sidecar's item collection.");
ABSL_FLAG(int, max_queued_jobs, 64,
          "Jobs that may wait on one device; a submit beyond is refused RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, cancel_grace, absl::Seconds(2),
          "How long a cancelled job may take to stop before it is killed.");

namespace recsys {
namespace {

std::string BesideThisBinary(const std::string& name) {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return name;
  std::string self(buf, n);
  const size_t slash = self.rfind('/');
  return slash == std::string::npos ? name : self.substr(0, slash + 1) + name;
}

absl::Status Run() {
  JobManagerOptions jo;
  jo.data_dir = absl::GetFlag(FLAGS_data_dir);
  jo.models_dir = absl::GetFlag(FLAGS_models_dir);
  jo.devices = absl::StrSplit(absl::GetFlag(FLAGS_devices), ',', absl::SkipEmpty());
  jo.worker_path = absl::GetFlag(FLAGS_worker);
  if (jo.worker_path.empty()) jo.worker_path = BesideThisBinary("job_worker");
  jo.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  jo.retrieval = absl::GetFlag(FLAGS_retrieval);
  jo.collection = absl::GetFlag(FLAGS_model_name);
  jo.cancel_grace = absl::GetFlag(FLAGS_cancel_grace);
  jo.max_queued_jobs = absl::GetFlag(FLAGS_max_queued_jobs);
  ASSIGN_OR_RETURN(std::unique_ptr<JobManager> jobs, JobManager::Create(jo));
  TrainerService service(jobs.get());

  ServerOptions options = ServerOptionsFromFlags();
  options.health_service_names = {"recsys.v1.Trainer"};
  ASSIGN_OR_RETURN(std::unique_ptr<ServiceServer> server,
                   ServiceServer::Create(options, {&service}));
  server->SetServing(true);  // the job store is open and recovered
  LOG(INFO) << "trainer serving on " << server->grpc_target();
  server->Wait();
  return absl::OkStatus();
}

}  // namespace
}  // namespace recsys

int main(int argc, char** argv) {
  recsys::BlockTerminationSignals();
  // --help had printed "No flags matched" (this file is not trainer_server.cc).
  recsys::ParseCommandLineWithHelp(
      argc, argv,
      "The Trainer service (train, build-cache and refresh jobs over gRPC).\n"
      "  trainer_server --data_dir=var/trainer --retrieval=127.0.0.1:50051");
  absl::Status s = recsys::Run();
  if (!s.ok()) {
    LOG(ERROR) << s;
    return 1;
  }
  return 0;
}
