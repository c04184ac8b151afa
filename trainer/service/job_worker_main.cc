// job_worker: runs one Trainer-service job in its own process, so that a
// crash, an OOM kill or a hung LibTorch call takes down only the job, never
// the service. Started (fork + exec) and supervised by JobRunner.
//
//   job_worker --spec=<JobSpec, binary proto> --models_dir=DIR --version=N
//              [--resume_dir=DIR (train)]
//              [--cache_out=FILE --image_cache_out=FILE (refresh)]
//
// Reports to the parent as JSON lines on stdout (one event per line,
// flushed); logs go to stderr, which the parent keeps as the job's log:
//   {"event":"progress","phase":..,"epoch":..,"epochs":..,"step":..,"steps":..,
//    "loss":..,"fraction":..,"rate":..,"eta":..}
//   {"event":"epoch","epoch":..,"loss":..,"hr10":..,"ndcg10":..,"seconds":..,"items_per_second":..}
//   {"event":"done","version":N,"metrics":"<json>"}
//   {"event":"error","code":"INVALID_ARGUMENT","message":..}
// Exit status 0 after "done", 1 after "error". SIGTERM asks the job to stop:
// training returns CANCELLED at its next step and exports nothing; a cache
// build at its next image batch or chunk, keeping its chunk files (a rerun
// into the same output resumes from them).
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "model/encoders/bert_text_encoder.h"
#include "model/encoders/vit_image_encoder.h"
#include "model/items_table.h"
#include "nlohmann/json.hpp"
#include "proto/trainer.pb.h"
#include "trainer/backbone/cache_builder.h"
#include "trainer/backbone/job_backbone.h"
#include "trainer/service/embedding_refresh.h"
#include "trainer/service/train_spec.h"
#include "trainer/training/train_pipeline.h"

ABSL_FLAG(std::string, spec, "", "the job's JobSpec (binary protobuf file)");
ABSL_FLAG(std::string, models_dir, "", "where model versions are written");
ABSL_FLAG(int64_t, version, 0, "the model version this job writes");
ABSL_FLAG(int, threads, 1, "CPU threads per training step (>= 2: the split step, trainer/README.md \"Threads\")");
ABSL_FLAG(std::string, resume_dir, "",
          "train: per-epoch resumable state; continues after the newest epoch there");
ABSL_FLAG(std::string, cache_out, "", "refresh: where the updated text cache is written");
ABSL_FLAG(std::string, image_cache_out, "", "refresh: where the updated image cache is written");

namespace recsys {
namespace {

std::atomic<bool> g_stop{false};
void OnTerm(int) { g_stop.store(true); }

void Emit(const nlohmann::json& event) {
  std::string line = event.dump();
  line += '\n';
  fwrite(line.data(), 1, line.size(), stdout);
  fflush(stdout);
}

template <typename T>
T OrDefault(T value, T fallback) {
  return value == T{} ? fallback : value;
}

absl::Status RunTrain(const v1::JobSpec& job) {
  const v1::TrainJobSpec t = TrainSpecWithDefaults(job.train());
  TrainPipelineOptions p;
  p.interactions = t.interactions();
  p.text_cache = t.text_cache();
  p.image_cache = t.image_cache();
  p.layer_mode = t.layer_mode();
  p.num_groups = t.num_groups();
  p.models_dir = absl::GetFlag(FLAGS_models_dir);
  p.version = absl::GetFlag(FLAGS_version);
  TrainerOptions& o = p.trainer;
  o.model = t.model();
  o.device = OrDefault<std::string>(job.device(), "cpu");
  o.epochs = t.epochs();
  o.patience = t.patience();
  o.batch_size = t.batch_size();
  o.max_len = t.max_len();
  o.embedding_dim = t.embedding_dim();
  o.bottleneck = t.bottleneck();
  o.ffn_dim = t.ffn_dim();
  o.num_heads = kTrainJobAttentionHeads;
  o.seed = t.seed();
  o.max_steps_per_epoch = t.max_steps_per_epoch();
  o.item_tower_lr = o.user_encoder_lr = t.learning_rate();
  o.num_threads = absl::GetFlag(FLAGS_threads);
  o.resume_dir = absl::GetFlag(FLAGS_resume_dir);
  absl::Time last = absl::InfinitePast();
  o.on_progress = [&last](const TrainProgress& pr) -> absl::Status {
    if (g_stop.load()) return absl::CancelledError("the job was cancelled");
    if (pr.finished_epoch != nullptr) {
      const EpochStats& e = *pr.finished_epoch;
      Emit({{"event", "epoch"},
            {"epoch", e.epoch},
            {"loss", e.loss},
            {"hr10", e.validation.hr(10)},
            {"ndcg10", e.validation.ndcg_at(10)},
            {"seconds", e.train_seconds},
            {"items_per_second", e.positions_per_second}});
      return absl::OkStatus();
    }
    const absl::Time now = absl::Now();
    if (now - last < absl::Milliseconds(200) && pr.step != pr.steps) return absl::OkStatus();
    last = now;
    Emit({{"event", "progress"},
          {"phase", absl::StrCat("epoch ", pr.epoch, "/", pr.epochs)},
          {"epoch", pr.epoch},
          {"epochs", pr.epochs},
          {"step", pr.step},
          {"steps", pr.steps},
          {"loss", pr.loss},
          {"fraction", pr.progress.fraction},
          {"rate", pr.progress.rate},
          {"eta", pr.progress.eta_seconds}});
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(TrainPipelineResult r, RunTrainPipeline(p));
  LOG(INFO) << r.ToJsonLine();
  Emit({{"event", "done"}, {"version", r.version}, {"metrics", r.metrics_json}});
  return absl::OkStatus();
}

absl::Status RunBuildCache(const v1::JobSpec& job) {
  const v1::BuildCacheJobSpec& b = job.build_cache();
  const std::string device = OrDefault<std::string>(job.device(), "cpu");
  const bool image = b.modality() == "image";
  ASSIGN_OR_RETURN(std::vector<CacheItem> items, ReadItemTable(b.items_table()));
  CacheBuildOptions o;
  o.output_path = b.output();
  o.extra_metadata["source"] = b.items_table();
  absl::Time last = absl::InfinitePast();
  const std::string phase = absl::StrCat("build_cache ", image ? "image" : "text");
  o.on_progress = [&last, &phase](int64_t done, int64_t total) -> absl::Status {
    if (g_stop.load()) return absl::CancelledError("the job was cancelled");
    const absl::Time now = absl::Now();
    if (now - last < absl::Milliseconds(200) && done != total) return absl::OkStatus();
    last = now;
    Emit({{"event", "progress"},
          {"phase", phase},
          {"step", done},
          {"steps", total},
          {"fraction", total > 0 ? static_cast<double>(done) / total : 0.0}});
    return absl::OkStatus();
  };
  Emit({{"event", "progress"}, {"phase", phase}, {"fraction", 0.0}});
  CacheBuildResult r;
  if (image) {
    ASSIGN_OR_RETURN(ViTImageEncoderOptions vo,
                     JobViTOptions("spec.build_cache.backbone", b.weights(), b.backbone(), device));
    ASSIGN_OR_RETURN(std::unique_ptr<ImageEncoder> encoder, CreateViTImageEncoder(vo));
    // Paths in the table are relative to its directory (as a refresh's
    // images_table).
    const size_t slash = b.items_table().rfind('/');
    o.image_base_dir = slash == std::string::npos ? "." : b.items_table().substr(0, slash);
    // Batches of 16 keep a CPU ViT near its throughput and a cancel within
    // one batch's time (the stop flag is checked between batches).
    o.images_per_batch = 16;
    ASSIGN_OR_RETURN(r, BuildImageCache(items, encoder.get(), o));
  } else {
    ASSIGN_OR_RETURN(BertTextEncoderOptions eo,
                     JobBertOptions("spec.build_cache.backbone", b.vocab(), b.weights(),
                                    b.backbone(), device));
    ASSIGN_OR_RETURN(std::unique_ptr<TextEncoder> encoder, CreateBertTextEncoder(eo));
    o.extra_metadata["tokenizer"] = "bert-wordpiece-uncased";
    ASSIGN_OR_RETURN(r, BuildTextCache(items, encoder.get(), o));
  }
  nlohmann::json metrics = {{"modality", image ? "image" : "text"},
                            {"items_written", r.items_written},
                            {"items_failed", r.items_failed},
                            {"chunks_computed", r.chunks_computed},
                            {"chunks_reused", r.chunks_reused},
                            {"seconds", r.seconds}};
  Emit({{"event", "done"}, {"version", 0}, {"metrics", metrics.dump()}});
  return absl::OkStatus();
}

absl::Status RunRefresh(const v1::JobSpec& job) {
  const v1::RefreshJobSpec& r = job.refresh();
  EmbeddingRefreshOptions o;
  o.models_dir = absl::GetFlag(FLAGS_models_dir);
  o.parent_version = r.version();
  o.version = absl::GetFlag(FLAGS_version);
  o.items_table = r.items_table();
  o.text_cache = r.text_cache();
  o.cache_out = absl::GetFlag(FLAGS_cache_out);
  o.image_cache = r.image_cache();
  o.images_table = r.images_table();
  o.image_weights = r.image_weights();
  o.image_cache_out = absl::GetFlag(FLAGS_image_cache_out);
  o.vocab = r.vocab();
  o.weights = r.weights();
  o.backbone = r.backbone();
  o.device = OrDefault<std::string>(job.device(), "cpu");
  o.num_threads = absl::GetFlag(FLAGS_threads);
  absl::Time last = absl::InfinitePast();
  o.on_progress = [&last](const RefreshProgress& p) -> absl::Status {
    if (g_stop.load()) return absl::CancelledError("the job was cancelled");
    const absl::Time now = absl::Now();
    if (now - last < absl::Milliseconds(200) && p.done != p.total) return absl::OkStatus();
    last = now;
    Emit({{"event", "progress"},
          {"phase", absl::StrCat("refresh: ", p.phase)},
          {"step", p.done},
          {"steps", p.total},
          {"fraction", p.total > 0 ? static_cast<double>(p.done) / p.total : 0.0}});
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(EmbeddingRefreshResult result, RunEmbeddingRefresh(o));
  Emit({{"event", "done"}, {"version", result.version}, {"metrics", result.ToJson()}});
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  struct sigaction sa = {};
  sa.sa_handler = OnTerm;
  sigaction(SIGTERM, &sa, nullptr);
  absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(absl::GetFlag(FLAGS_spec)));
    v1::JobSpec job;
    if (!job.ParseFromString(bytes)) return absl::InvalidArgumentError("spec: not a JobSpec");
    switch (job.job_case()) {
      case v1::JobSpec::kTrain:
        return RunTrain(job);
      case v1::JobSpec::kBuildCache:
        return RunBuildCache(job);
      case v1::JobSpec::kRefresh:
        return RunRefresh(job);
      default:
        return absl::InvalidArgumentError("spec: no job");
    }
  }();
  if (status.ok()) return 0;
  Emit({{"event", "error"},
        {"code", absl::StatusCodeToString(status.code())},
        {"message", std::string(status.message())}});
  LOG(ERROR) << status;
  return 1;
}

}  // namespace
}  // namespace recsys

int main(int argc, char** argv) { return recsys::Main(argc, argv); }
