// recctl trainer ...: the Trainer service (jobs and model versions).
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "clients/recctl/recctl.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "google/protobuf/util/json_util.h"
#include "proto/trainer.grpc.pb.h"

namespace recsys {
namespace recctl {
namespace {

namespace pb = ::recsys::v1;

std::unique_ptr<pb::Trainer::Stub> Stub(Context& c) {
  return pb::Trainer::NewStub(c.Channel("trainer"));
}

std::string StateName(pb::JobState s) {
  std::string n = pb::JobState_Name(s);
  return n.rfind("JOB_", 0) == 0 ? n.substr(4) : n;
}

std::string KindName(pb::JobKind k) {
  std::string n = pb::JobKind_Name(k);
  return absl::AsciiStrToLower(n.rfind("JOB_", 0) == 0 ? n.substr(4) : n);
}


bool Succeeded(pb::JobState s) { return s == pb::JOB_SUCCEEDED || s == pb::JOB_PUBLISHED; }

void PrintJob(Context& c, const pb::Job& j) {
  c.out() << "job " << j.id() << " (" << KindName(j.kind()) << ", " << j.device()
          << "): " << StateName(j.state());
  if (j.version() > 0) {
    c.out() << ", model version " << j.version();
    if (j.state() == pb::JOB_FAILED || j.state() == pb::JOB_CANCELLED) c.out() << " (not written)";
  }
  c.out() << "\n";
  if (!j.error().empty()) c.out() << "error: " << j.error() << "\n";
  if (j.epochs_size() > 0) {
    Table t({"EPOCH", "LOSS", "VALID HR@10", "VALID NDCG@10", "SECONDS", "ITEMS/S"});
    for (const pb::EpochMetrics& e : j.epochs()) {
      t.Add({absl::StrCat(e.epoch()), absl::StrFormat("%.4f", e.loss()),
             absl::StrFormat("%.4f", e.validation_hr10()),
             absl::StrFormat("%.4f", e.validation_ndcg10()), absl::StrFormat("%.1f", e.seconds()),
             absl::StrFormat("%.0f", e.items_per_second())});
    }
    t.Print(c.out());
  }
  if (!j.metrics_json().empty() && j.metrics_json() != "{}") {
    c.out() << "metrics: " << j.metrics_json() << "\n";
  }
}

absl::StatusOr<int64_t> JobId(Context& c) {
  ASSIGN_OR_RETURN(std::string s, c.args().Required("job"));
  ASSIGN_OR_RETURN(int64_t id, c.args().GetInt("job"));
  return id;
}

// Streams the job's states until it ends: a progress line (redrawn on a
// terminal) and one line per finished epoch. OK only when the job succeeded.
absl::Status Watch(Context& c, int64_t id) {
  pb::WatchJobRequest req;
  req.set_job_id(id);
  grpc::ClientContext ctx;  // no deadline: a job runs as long as it runs
  std::unique_ptr<grpc::ClientReaderInterface<pb::Job>> reader = Stub(c)->WatchJob(&ctx, req);
  pb::Job job;
  int epochs_shown = 0;
  std::string last_line;
  while (reader->Read(&job)) {
    if (c.json()) {
      c.PrintJson(job);
      continue;
    }
    for (; epochs_shown < job.epochs_size(); ++epochs_shown) {
      const pb::EpochMetrics& e = job.epochs(epochs_shown);
      c.out() << absl::StrFormat(
          "epoch %d: loss %.4f, valid HR@10 %.4f NDCG@10 %.4f, %.1f s, %.0f items/s\n",
          e.epoch(), e.loss(), e.validation_hr10(), e.validation_ndcg10(), e.seconds(),
          e.items_per_second());
    }
    const pb::JobProgress& p = job.progress();
    std::string line = absl::StrFormat("job %d %s", job.id(), StateName(job.state()));
    if (job.state() == pb::JOB_RUNNING || job.state() == pb::JOB_PUBLISHING) {
      absl::StrAppendFormat(&line, " %s %3.0f%%", p.phase(), 100 * p.fraction());
      if (p.steps() > 0) absl::StrAppendFormat(&line, " step %d/%d", p.step(), p.steps());
      if (p.loss() != 0) absl::StrAppendFormat(&line, " loss %.4f", p.loss());
      if (p.items_per_second() > 0) absl::StrAppendFormat(&line, " %.0f items/s", p.items_per_second());
      if (p.eta_seconds() >= 0) absl::StrAppendFormat(&line, " ETA %.0fs", p.eta_seconds());
    } else if (job.state() == pb::JOB_QUEUED) {
      absl::StrAppendFormat(&line, " (%d ahead)", job.queue_position());
    }
    if (line != last_line) c.out() << line << "\n" << std::flush;
    last_line = line;
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return RpcError(s, "watch");
  if (!c.json()) PrintJob(c, job);
  if (!Succeeded(job.state())) {
    return absl::AbortedError(absl::StrCat("job ", id, " ended ", StateName(job.state()),
                                           job.error().empty() ? "" : ": ", job.error()));
  }
  return absl::OkStatus();
}

Command Submit() {
  return {"trainer", "submit",
          "submit a train, build-cache or embedding-refresh job (flags or a JSON JobSpec)",
          "--interactions=users.tsv --text_cache=t.safetensors [--publish] [--watch] | "
          "--kind=refresh --version=N --items=updated.tsv --text_cache=t.safetensors | "
          "--spec=job.json",
          {{"spec", "", "a JSON recsys.v1.JobSpec file (overrides the job flags)"},
           {"kind", "train", "train | build_cache | refresh"},
           {"version", "0", "refresh: the model version whose item embeddings are refreshed"},
           {"weights", "", "build_cache (BERT or ViT) / refresh (BERT): safetensors weights"},
           {"backbone", "", "build_cache / refresh: stand-in size, text LAYERSxHIDDEN (e.g. 6x256), "
                            "image LAYERSxHIDDEN[@IMAGE/PATCH] (e.g. 4x192@224/16)"},
           {"modality", "", "build_cache: text (default; --items key<TAB>title) | image "
                            "(--items key<TAB>image path, relative to that file)"},
           {"interactions", "", "train: users.tsv or user,item,timestamp CSV"},
           {"text_cache", "", "train: text hidden-state cache; refresh: the states to reuse"},
           {"image_cache", "", "train: image hidden-state cache; refresh: the image states to reuse"},
           {"images", "", "refresh (image side): key<TAB>image path of the updated catalog"},
           {"image_weights", "", "refresh (image side): ViT weights (empty: the seeded stand-in)"},
           {"items", "", "items table: titles when publishing; build_cache: the input; "
                         "refresh: the updated catalog"},
           {"model", "", "train: iisan | sasrec"},
           {"epochs", "0", "train: epochs (0: the trainer's default)"},
           {"patience", "0", "train: early-stopping patience (0: default)"},
           {"batch_size", "0", "train: windows per step (0: default)"},
           {"max_len", "0", "train: user-encoder input length (0: default)"},
           {"embedding_dim", "0", "train: item / user width (0: default)"},
           {"bottleneck", "0", "train: side-block width (0: default)"},
           {"ffn_dim", "0", "train: user-encoder feed-forward width (0: default)"},
           {"seed", "0", "train: seed (0: the default)"},
           {"learning_rate", "0", "train: learning rate of both parameter groups (0: 1e-3)"},
           {"max_steps_per_epoch", "0", "train: cap on steps per epoch"},
           {"layer_mode", "", "train: every_second | group | all (empty: default)"},
           {"num_groups", "0", "train: groups for --layer_mode=group"},
           {"output", "", "build_cache: the cache file"},
           {"vocab", "", "build_cache / refresh (BERT backbones): WordPiece vocabulary"},
           {"device", "", "one of the trainer's --devices"},
           {"resume_from", "0", "train: continue this failed or cancelled job"},
           {"publish", "false", "publish into the sidecar when done", true},
           {"watch", "false", "then watch the job until it ends", true}},
          [](Context& c) -> absl::Status {
            pb::SubmitJobRequest req;
            pb::JobSpec* spec = req.mutable_spec();
            const Args& a = c.args();
            if (!a.Get("spec").empty()) {
              ASSIGN_OR_RETURN(std::ifstream in, OpenInputFile("spec", a.Get("spec")));
              std::stringstream text;
              text << in.rdbuf();
              auto parsed = google::protobuf::util::JsonStringToMessage(text.str(), spec);
              if (!parsed.ok()) {
                return absl::InvalidArgumentError(
                    absl::StrCat("--spec: not a JSON JobSpec: ", std::string(parsed.message())));
              }
            } else if (a.Get("kind") == "build_cache") {
              pb::BuildCacheJobSpec* b = spec->mutable_build_cache();
              b->set_items_table(a.Get("items"));
              b->set_output(a.Get("output"));
              b->set_vocab(a.Get("vocab"));
              b->set_weights(a.Get("weights"));
              b->set_backbone(a.Get("backbone"));
              b->set_modality(a.Get("modality"));
            } else if (a.Get("kind") == "refresh") {
              pb::RefreshJobSpec* r = spec->mutable_refresh();
              ASSIGN_OR_RETURN(int64_t version, a.GetInt("version"));
              r->set_version(version);
              r->set_items_table(a.Get("items"));
              r->set_text_cache(a.Get("text_cache"));
              r->set_image_cache(a.Get("image_cache"));
              r->set_vocab(a.Get("vocab"));
              r->set_weights(a.Get("weights"));
              r->set_backbone(a.Get("backbone"));
              r->set_images_table(a.Get("images"));
              r->set_image_weights(a.Get("image_weights"));
            } else if (a.Get("kind") == "train") {
              pb::TrainJobSpec* t = spec->mutable_train();
              t->set_interactions(a.Get("interactions"));
              t->set_text_cache(a.Get("text_cache"));
              t->set_image_cache(a.Get("image_cache"));
              t->set_items_table(a.Get("items"));
              t->set_model(a.Get("model"));
              ASSIGN_OR_RETURN(int32_t epochs, a.GetInt32("epochs"));
              t->set_epochs(epochs);
              for (auto [flag, setter] :
                   std::vector<std::pair<const char*, void (pb::TrainJobSpec::*)(int32_t)>>{
                       {"patience", &pb::TrainJobSpec::set_patience},
                       {"batch_size", &pb::TrainJobSpec::set_batch_size},
                       {"max_len", &pb::TrainJobSpec::set_max_len},
                       {"embedding_dim", &pb::TrainJobSpec::set_embedding_dim},
                       {"bottleneck", &pb::TrainJobSpec::set_bottleneck},
                       {"ffn_dim", &pb::TrainJobSpec::set_ffn_dim}}) {
                ASSIGN_OR_RETURN(int32_t v, a.GetInt32(flag));
                (t->*setter)(v);
              }
              ASSIGN_OR_RETURN(uint64_t seed, a.GetUint64("seed"));
              t->set_seed(seed);
              ASSIGN_OR_RETURN(double lr, a.GetDouble("learning_rate"));
              t->set_learning_rate(lr);
              ASSIGN_OR_RETURN(int32_t steps, a.GetInt32("max_steps_per_epoch"));
              t->set_max_steps_per_epoch(steps);
              t->set_layer_mode(a.Get("layer_mode"));
              ASSIGN_OR_RETURN(int32_t groups, a.GetInt32("num_groups"));
              t->set_num_groups(groups);
            } else {
              return absl::InvalidArgumentError(
                  absl::StrCat("--kind: expected train, build_cache or refresh, got ",
                               QuoteUserInput(a.Get("kind"))));
            }
            if (a.Has("device") && !a.Get("device").empty()) spec->set_device(a.Get("device"));
            ASSIGN_OR_RETURN(bool publish, a.GetBool("publish"));
            if (publish) spec->set_publish(true);
            ASSIGN_OR_RETURN(int64_t resume, a.GetInt("resume_from"));
            if (resume > 0) spec->set_resume_from(resume);
            pb::SubmitJobResponse resp;
            grpc::Status s = Stub(c)->SubmitJob(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "submit");
            ASSIGN_OR_RETURN(bool watch, a.GetBool("watch"));
            if (c.json() && !watch) return PrintedJson(c, resp);
            if (!c.json()) c.out() << "submitted job " << resp.job_id() << "\n";
            return watch ? Watch(c, resp.job_id()) : absl::OkStatus();
          }};
}

Command WatchCommand() {
  return {"trainer", "watch", "follow a job until it ends (exit 0 only if it succeeded)",
          "--job=N", {{"job", "", "job id"}},
          [](Context& c) -> absl::Status {
            ASSIGN_OR_RETURN(int64_t id, JobId(c));
            return Watch(c, id);
          }};
}

Command Get() {
  return {"trainer", "get", "a job's record", "--job=N", {{"job", "", "job id"}},
          [](Context& c) -> absl::Status {
            pb::GetJobRequest req;
            ASSIGN_OR_RETURN(int64_t id, JobId(c));
            req.set_job_id(id);
            pb::Job job;
            grpc::Status s = Stub(c)->GetJob(c.Call().get(), req, &job);
            if (!s.ok()) return RpcError(s, "get");
            if (c.json()) return PrintedJson(c, job);
            PrintJob(c, job);
            return absl::OkStatus();
          }};
}

Command Cancel() {
  return {"trainer", "cancel", "cancel a queued or running job", "--job=N", {{"job", "", "job id"}},
          [](Context& c) -> absl::Status {
            pb::CancelJobRequest req;
            ASSIGN_OR_RETURN(int64_t id, JobId(c));
            req.set_job_id(id);
            pb::Job job;
            grpc::Status s = Stub(c)->CancelJob(c.Call().get(), req, &job);
            if (!s.ok()) return RpcError(s, "cancel");
            if (c.json()) return PrintedJson(c, job);
            c.out() << "job " << job.id() << ": " << StateName(job.state()) << "\n";
            return absl::OkStatus();
          }};
}

Command Jobs() {
  return {"trainer", "jobs", "the jobs, newest first",
          "[--state=RUNNING] [--kind=train] [--page_size=N] [--page_token=T]",
          {{"state", "", "QUEUED | RUNNING | PUBLISHED | FAILED | ..."},
           {"kind", "", "train | build_cache | refresh"},
           {"page_size", "0", "jobs per page (0: the server's default)"},
           {"page_token", "", "from the previous page"}},
          [](Context& c) -> absl::Status {
            pb::ListJobsRequest req;
            const std::string state = absl::AsciiStrToUpper(c.args().Get("state"));
            if (!state.empty()) {
              pb::JobState st;
              if (!pb::JobState_Parse("JOB_" + state, &st)) {
                return absl::InvalidArgumentError(absl::StrCat("--state: unknown state ", QuoteUserInput(state)));
              }
              req.set_state(st);
            }
            const std::string kind = absl::AsciiStrToUpper(c.args().Get("kind"));
            if (!kind.empty()) {
              pb::JobKind k;
              if (!pb::JobKind_Parse("JOB_" + kind, &k)) {
                return absl::InvalidArgumentError(absl::StrCat("--kind: unknown kind ", QuoteUserInput(kind)));
              }
              req.set_kind(k);
            }
            ASSIGN_OR_RETURN(int32_t size, c.args().GetInt32("page_size"));
            req.set_page_size(size);
            req.set_page_token(c.args().Get("page_token"));
            pb::ListJobsResponse resp;
            grpc::Status s = Stub(c)->ListJobs(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "jobs");
            if (c.json()) return PrintedJson(c, resp);
            Table t({"JOB", "KIND", "STATE", "DEVICE", "VERSION", "CREATED", "ERROR"});
            for (const pb::Job& j : resp.jobs()) {
              t.Add({absl::StrCat(j.id()), KindName(j.kind()), StateName(j.state()), j.device(),
                     j.version() > 0 ? absl::StrCat(j.version()) : "", j.created_time(),
                     j.error().substr(0, 60)});
            }
            t.Print(c.out());
            if (!resp.next_page_token().empty()) {
              c.out() << "more: --page_token=" << resp.next_page_token() << "\n";
            }
            return absl::OkStatus();
          }};
}

Command Versions() {
  return {"trainer", "versions", "the model versions the trainer has written", "", {},
          [](Context& c) -> absl::Status {
            pb::ListModelVersionsResponse resp;
            grpc::Status s = Stub(c)->ListModelVersions(c.Call().get(), {}, &resp);
            if (!s.ok()) return RpcError(s, "versions");
            if (c.json()) return PrintedJson(c, resp);
            Table t({"VERSION", "KIND", "PARENT", "ITEMS", "JOB", "PUBLISHED", "LIVE", "CREATED"});
            for (const pb::ModelVersionInfo& v : resp.versions()) {
              t.Add({absl::StrCat(v.version()), v.kind(),
                     v.parent_version() > 0 ? absl::StrCat(v.parent_version()) : "",
                     absl::StrCat(v.item_count()), v.job_id() > 0 ? absl::StrCat(v.job_id()) : "",
                     v.published() ? "yes" : "", v.live() ? "yes" : "", v.created_time()});
            }
            t.Print(c.out());
            return absl::OkStatus();
          }};
}

Command Publish() {
  return {"trainer", "publish", "(re-)publish a model version into the sidecar", "--version=N",
          {{"version", "", "model version"}},
          [](Context& c) -> absl::Status {
            pb::PublishModelVersionRequest req;
            ASSIGN_OR_RETURN(std::string given, c.args().Required("version"));
            ASSIGN_OR_RETURN(int64_t v, c.args().GetInt("version"));
            req.set_version(v);
            pb::PublishModelVersionResponse resp;
            grpc::Status s = Stub(c)->PublishModelVersion(c.LongCall().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "publish");
            if (c.json()) return PrintedJson(c, resp);
            c.out() << "published model version " << resp.version() << ": " << resp.upserted()
                    << " items upserted, " << resp.deleted() << " deleted\n";
            return absl::OkStatus();
          }};
}

}  // namespace

std::vector<Command> TrainerCommands() {
  return {Submit(), WatchCommand(), Get(), Cancel(), Jobs(), Versions(), Publish()};
}

}  // namespace recctl
}  // namespace recsys
