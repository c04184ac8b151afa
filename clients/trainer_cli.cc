// trainer_cli: command-line client of the Trainer service.
//   trainer_cli --trainer=HOST:PORT train --interactions=users.tsv --text_cache=t.safetensors \
//       [--image_cache=...] [--items=items.tsv] [--epochs=N] [--publish] [--watch]
//   trainer_cli --trainer=... build_cache --items=items.tsv --vocab=vocab.txt --output=text.safetensors
//   trainer_cli --trainer=... get|cancel|watch --job=N
//   trainer_cli --trainer=... list [--state=RUNNING] [--kind=train] [--page_size=N]
//   trainer_cli --trainer=... versions | publish --version=N
// `train`/`build_cache` print "job_id=N"; `get`, `list` and `versions` print
// JSON; `watch` prints one line per change and exits 0 only when the job
// ended PUBLISHED or SUCCEEDED.
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "proto/trainer.grpc.pb.h"

ABSL_FLAG(std::string, trainer, "127.0.0.1:50053", "host:port of the trainer");
ABSL_FLAG(int64_t, job, 0, "job id");
ABSL_FLAG(int64_t, version, 0, "model version (publish)");
ABSL_FLAG(std::string, interactions, "", "train: interactions file");
ABSL_FLAG(std::string, text_cache, "", "train: text hidden-state cache");
ABSL_FLAG(std::string, image_cache, "", "train: image hidden-state cache");
ABSL_FLAG(std::string, items, "", "train: items table (titles); build_cache: its input");
ABSL_FLAG(std::string, model, "", "train: iisan | sasrec");
ABSL_FLAG(int, epochs, 0, "train: epochs (0: the trainer's default)");
ABSL_FLAG(int, patience, 0, "train: early-stopping patience");
ABSL_FLAG(int, batch_size, 0, "train: batch size");
ABSL_FLAG(int, embedding_dim, 0, "train: embedding width");
ABSL_FLAG(int, bottleneck, 0, "train: side-block width");
ABSL_FLAG(int, ffn_dim, 0, "train: user-encoder FFN width");
ABSL_FLAG(int, max_steps_per_epoch, 0, "train: cap on steps per epoch");
ABSL_FLAG(uint64_t, seed, 0, "train: seed (0: 42)");
ABSL_FLAG(std::string, layer_mode, "", "train: every_second | group | all");
ABSL_FLAG(int, num_groups, 0, "train: groups for layer_mode=group");
ABSL_FLAG(std::string, device, "", "job device (empty: the trainer's first)");
ABSL_FLAG(bool, publish, false, "train: publish the version into the sidecar when done");
ABSL_FLAG(int64_t, resume_from, 0, "train: continue this failed/cancelled job");
ABSL_FLAG(bool, watch, false, "train/build_cache: watch the job after submitting it");
ABSL_FLAG(std::string, vocab, "", "build_cache: WordPiece vocab");
ABSL_FLAG(std::string, output, "", "build_cache: output cache file");
ABSL_FLAG(std::string, backbone, "", "build_cache: stand-in size LAYERSxHIDDEN");
ABSL_FLAG(std::string, state, "", "list: filter by state (e.g. RUNNING)");
ABSL_FLAG(std::string, kind, "", "list: filter by kind (train | build_cache | refresh)");
ABSL_FLAG(int, page_size, 0, "list: page size");
ABSL_FLAG(std::string, page_token, "", "list: page token");
ABSL_FLAG(absl::Duration, deadline, absl::Seconds(30), "per unary call");

namespace {

using namespace recsys::v1;  // NOLINT: a small client

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::string StateName(JobState s) {
  std::string n = JobState_Name(s);
  return n.rfind("JOB_", 0) == 0 ? n.substr(4) : n;
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() +
                  absl::ToChronoSeconds(absl::GetFlag(FLAGS_deadline)));
  return c;
}

int Fail(const grpc::Status& s) {
  std::cerr << "trainer_cli: " << s.error_code() << " " << s.error_message() << "\n";
  return 2;
}

std::string Eta(double s) {
  if (s < 0) return "?";
  return absl::FormatDuration(absl::Seconds(static_cast<int64_t>(s + 0.5)));
}

int Watch(Trainer::Stub* stub, int64_t id) {
  grpc::ClientContext context;
  WatchJobRequest req;
  req.set_job_id(id);
  auto reader = stub->WatchJob(&context, req);
  Job job;
  int epochs_shown = 0;
  std::string last_line;
  JobState last_state = JOB_STATE_UNSPECIFIED;
  while (reader->Read(&job)) {
    for (; epochs_shown < job.epochs_size(); ++epochs_shown) {
      const EpochMetrics& e = job.epochs(epochs_shown);
      std::printf("  job %lld epoch %d: loss %.4f, validation HR@10 %.4f NDCG@10 %.4f, %.1f s, %.0f positions/s\n",
                  static_cast<long long>(id), e.epoch(), e.loss(), e.validation_hr10(),
                  e.validation_ndcg10(), e.seconds(), e.items_per_second());
    }
    std::string line;
    if (job.state() != last_state) {
      line = absl::StrCat("  job ", id, " ", StateName(job.state()));
      if (job.state() == JOB_QUEUED) absl::StrAppend(&line, " (", job.queue_position(), " ahead)");
      if (job.version() > 0 && job.state() != JOB_QUEUED) absl::StrAppend(&line, ", version ", job.version());
      if (!job.error().empty()) absl::StrAppend(&line, ": ", job.error());
      last_state = job.state();
    } else if (job.state() == JOB_RUNNING && job.progress().steps() > 0 &&
               job.progress().phase().rfind("epoch", 0) == 0) {
      const JobProgress& p = job.progress();
      // One line per 10% of an epoch keeps the output readable.
      const int decile = static_cast<int>(p.fraction() * 10);
      line = absl::StrFormat("  job %d %s: %d%% (step %d/%d) loss %.4f, %.0f positions/s, ETA %s",
                             id, p.phase(), decile * 10, p.step(), p.steps(), p.loss(),
                             p.items_per_second(), Eta(p.eta_seconds()));
      const std::string key = absl::StrCat(p.phase(), decile);
      if (key == last_line) line.clear(); else last_line = key;
    }
    if (!line.empty()) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return Fail(s);
  return job.state() == JOB_PUBLISHED || job.state() == JOB_SUCCEEDED ? 0 : 1;
}

int Submit(Trainer::Stub* stub, const JobSpec& spec) {
  SubmitJobRequest req;
  *req.mutable_spec() = spec;
  SubmitJobResponse resp;
  grpc::Status s = stub->SubmitJob(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  std::printf("job_id=%lld\n", static_cast<long long>(resp.job_id()));
  std::fflush(stdout);
  return absl::GetFlag(FLAGS_watch) ? Watch(stub, resp.job_id()) : 0;
}

int Run(const std::string& command) {
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_trainer), grpc::InsecureChannelCredentials());
  auto stub = Trainer::NewStub(channel);
  const int64_t id = absl::GetFlag(FLAGS_job);
  if (command == "train") {
    JobSpec spec;
    TrainJobSpec* t = spec.mutable_train();
    t->set_interactions(absl::GetFlag(FLAGS_interactions));
    t->set_text_cache(absl::GetFlag(FLAGS_text_cache));
    t->set_image_cache(absl::GetFlag(FLAGS_image_cache));
    t->set_items_table(absl::GetFlag(FLAGS_items));
    t->set_model(absl::GetFlag(FLAGS_model));
    t->set_epochs(absl::GetFlag(FLAGS_epochs));
    t->set_patience(absl::GetFlag(FLAGS_patience));
    t->set_batch_size(absl::GetFlag(FLAGS_batch_size));
    t->set_embedding_dim(absl::GetFlag(FLAGS_embedding_dim));
    t->set_bottleneck(absl::GetFlag(FLAGS_bottleneck));
    t->set_ffn_dim(absl::GetFlag(FLAGS_ffn_dim));
    t->set_max_steps_per_epoch(absl::GetFlag(FLAGS_max_steps_per_epoch));
    t->set_seed(absl::GetFlag(FLAGS_seed));
    t->set_layer_mode(absl::GetFlag(FLAGS_layer_mode));
    t->set_num_groups(absl::GetFlag(FLAGS_num_groups));
    spec.set_device(absl::GetFlag(FLAGS_device));
    spec.set_publish(absl::GetFlag(FLAGS_publish));
    spec.set_resume_from(absl::GetFlag(FLAGS_resume_from));
    return Submit(stub.get(), spec);
  }
  if (command == "build_cache") {
    JobSpec spec;
    BuildCacheJobSpec* b = spec.mutable_build_cache();
    b->set_items_table(absl::GetFlag(FLAGS_items));
    b->set_vocab(absl::GetFlag(FLAGS_vocab));
    b->set_output(absl::GetFlag(FLAGS_output));
    b->set_backbone(absl::GetFlag(FLAGS_backbone));
    spec.set_device(absl::GetFlag(FLAGS_device));
    return Submit(stub.get(), spec);
  }
  if (command == "get" || command == "cancel") {
    Job job;
    grpc::Status s;
    if (command == "get") {
      GetJobRequest req;
      req.set_job_id(id);
      s = stub->GetJob(Context().get(), req, &job);
    } else {
      CancelJobRequest req;
      req.set_job_id(id);
      s = stub->CancelJob(Context().get(), req, &job);
    }
    if (!s.ok()) return Fail(s);
    std::printf("%s\n", Json(job).c_str());
    return 0;
  }
  if (command == "watch") return Watch(stub.get(), id);
  if (command == "list") {
    ListJobsRequest req;
    req.set_page_size(absl::GetFlag(FLAGS_page_size));
    req.set_page_token(absl::GetFlag(FLAGS_page_token));
    const std::string state = absl::AsciiStrToUpper(absl::GetFlag(FLAGS_state));
    if (!state.empty()) {
      JobState st;
      if (!JobState_Parse("JOB_" + state, &st)) {
        std::cerr << "trainer_cli: --state: unknown state " << state << "\n";
        return 2;
      }
      req.set_state(st);
    }
    const std::string kind = absl::AsciiStrToUpper(absl::GetFlag(FLAGS_kind));
    if (!kind.empty()) {
      JobKind k;
      if (!JobKind_Parse("JOB_" + kind, &k)) {
        std::cerr << "trainer_cli: --kind: unknown kind " << kind << "\n";
        return 2;
      }
      req.set_kind(k);
    }
    ListJobsResponse resp;
    grpc::Status s = stub->ListJobs(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    std::printf("%s\n", Json(resp).c_str());
    return 0;
  }
  if (command == "versions") {
    ListModelVersionsResponse resp;
    grpc::Status s = stub->ListModelVersions(Context().get(), ListModelVersionsRequest(), &resp);
    if (!s.ok()) return Fail(s);
    std::printf("%s\n", Json(resp).c_str());
    return 0;
  }
  if (command == "publish") {
    PublishModelVersionRequest req;
    req.set_version(absl::GetFlag(FLAGS_version));
    PublishModelVersionResponse resp;
    auto context = Context();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    grpc::Status s = stub->PublishModelVersion(context.get(), req, &resp);
    if (!s.ok()) return Fail(s);
    std::printf("%s\n", Json(resp).c_str());
    return 0;
  }
  std::cerr << "trainer_cli: unknown command '" << command
            << "' (train, build_cache, get, list, cancel, watch, versions, publish)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::cerr << "usage: trainer_cli [flags] train|build_cache|get|list|cancel|watch|versions|publish\n";
    return 2;
  }
  return Run(args[1]);
}
