#include "trainer/service/job_manager.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "common/validation.h"
#include "model/hidden_state_cache.h"
#include "model/model_publisher.h"
#include "model/model_version.h"
#include "nlohmann/json.hpp"
#include "model/items_table.h"
#include "trainer/backbone/backbone_size.h"
#include "trainer/data/interactions.h"
#include "trainer/data/layer_selection.h"
#include "trainer/data/standin_text_cache.h"
#include "trainer/service/refresh_plan.h"
#include "trainer/service/train_spec.h"
#include "trainer/training/step_size.h"

namespace recsys {
namespace {

std::string KindLabel(v1::JobKind k) {
  switch (k) {
    case v1::JOB_TRAIN: return "train";
    case v1::JOB_BUILD_CACHE: return "build_cache";
    case v1::JOB_REFRESH: return "refresh";
    default: return "unspecified";
  }
}

std::string StateLabel(v1::JobState s) {
  std::string name = v1::JobState_Name(s);
  return absl::StartsWith(name, "JOB_") ? name.substr(4) : name;
}

struct Metrics {
  MetricFamily<Gauge>* jobs;
  MetricFamily<Gauge>* progress;
  MetricFamily<Gauge>* queue;
  MetricFamily<Histogram>* epoch_seconds;
  MetricFamily<Gauge>* items_per_second;
  MetricFamily<Gauge>* published_version;
  MetricFamily<Counter>* finished;
  MetricFamily<Gauge>* refresh_items;
  MetricFamily<Counter>* refresh_items_total;
};

const Metrics& M() {
  static const Metrics* m = [] {
    MetricsRegistry& r = MetricsRegistry::Global();
    return new Metrics{
        r.AddGauge("recsys_trainer_jobs", "Jobs in the job store by kind and state.",
                   {"kind", "state"}),
        r.AddGauge("recsys_trainer_job_progress_ratio",
                   "Fraction done of the job running on a device (0 when idle).", {"device"}),
        r.AddGauge("recsys_trainer_queue_length", "Jobs waiting per device.", {"device"}),
        r.AddHistogram("recsys_trainer_epoch_seconds", "Training time per epoch.", {"device"},
                       {0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800}),
        r.AddGauge("recsys_trainer_items_per_second",
                   "Training positions per second of the last epoch.", {"device"}),
        r.AddGauge("recsys_trainer_published_version",
                   "Last model version the trainer saw live in the sidecar.", {"model"}),
        r.AddCounter("recsys_trainer_jobs_finished_total", "Jobs that reached a final state.",
                     {"kind", "state"}),
        r.AddGauge("recsys_trainer_refresh_items",
                   "Items of the last finished embedding refresh, by what happened to them "
                   "(reused: states and embedding kept; recomputed: encoded by the backbone; "
                   "removed: dropped from the catalog).",
                   {"outcome"}),
        r.AddCounter("recsys_trainer_refresh_items_total",
                     "Items of every finished embedding refresh, by outcome.", {"outcome"}),
    };
  }();
  return *m;
}

absl::Status FileField(const std::string& field, const std::string& path, bool required) {
  if (path.empty()) {
    if (required) return InvalidField(field, "a file path is required", "''");
    return absl::OkStatus();
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(field, ": no such file ", QuoteUserInput(path)));
  }
  if (!S_ISREG(st.st_mode)) {  // a directory, a device, a FIFO (whose read would block)
    return InvalidField(field, "a regular file",
                        absl::StrCat(S_ISDIR(st.st_mode) ? "the directory " : "the special file ",
                                     QuoteUserInput(path)));
  }
  return absl::OkStatus();
}

// An image items table (key<TAB>image path, relative paths against the
// table's directory) whose every row names an image file that exists: the
// build would otherwise skip those items, and a model trained on the cache
// would lack them.
absl::Status CheckImageTable(const std::string& field, const std::string& path) {
  absl::StatusOr<std::vector<ItemTableRow>> rows = ReadItemTable(path);
  if (!rows.ok()) return absl::InvalidArgumentError(absl::StrCat(field, ": ", rows.status().message()));
  if (rows->empty()) return InvalidField(field, "at least one key<TAB>image path line", "no lines");
  const size_t slash = path.rfind('/');
  const std::string base = slash == std::string::npos ? "." : path.substr(0, slash);
  int64_t missing = 0;
  std::string example;
  for (const ItemTableRow& r : *rows) {
    const std::string image =
        r.value.empty() || r.value[0] == '/' ? r.value : JoinPath(base, r.value);
    struct stat st;
    if (image.empty() || stat(image.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      if (missing++ == 0) {
        example = absl::StrCat("the image of ", QuoteUserInput(r.key), ", ", QuoteUserInput(r.value));
      }
    }
  }
  if (missing > 0) {
    return absl::NotFoundError(absl::StrCat(field, ": ", missing, " of ", rows->size(),
                                            " image files do not exist (paths are relative to the "
                                            "table's directory), e.g. ",
                                            example));
  }
  return absl::OkStatus();
}

// A cache that opens, and covers every item of the interactions.
absl::Status CheckCache(const std::string& field, const std::string& path,
                        const InteractionData& data, const LayerSelection& layers) {
  if (path.empty()) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<HiddenStateCache>> cache = HiddenStateCache::Open(path);
  if (!cache.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", QuoteUserInput(path),
                                                   " is not a hidden-state cache: ",
                                                   cache.status().message()));
  }
  absl::Status sel = SelectStates(static_cast<int>((*cache)->num_states()), layers).status();
  if (!sel.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": its ", (*cache)->num_states(),
                                                   " states do not fit the layer selection: ",
                                                   sel.message()));
  }
  int64_t missing = 0;
  std::string example;
  for (const std::string& key : data.item_keys) {
    if ((*cache)->RowOf(key) < 0) {
      if (missing++ == 0) example = key;
    }
  }
  if (missing > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": the cache lacks ", missing, " of the ", data.item_keys.size(),
        " items of the interactions, e.g. ", QuoteUserInput(example)));
  }
  return absl::OkStatus();
}

std::string JobDir(const JobManagerOptions& o, int64_t id) {
  return JoinPath(JoinPath(o.data_dir, "jobs"), absl::StrCat(id));
}

// A refresh job's updated caches: the next refresh's text_cache / image_cache.
std::string RefreshCachePath(const JobManagerOptions& o, int64_t id, const std::string& modality) {
  return JoinPath(JobDir(o, id), modality + "_states.safetensors");
}

// Everything about a refresh that can be known before it runs, by the same
// planner the worker runs (refresh_plan.h).
absl::Status CheckRefresh(const v1::RefreshJobSpec& r, const std::string& models_dir) {
  if (r.version() <= 0) {
    return InvalidField("spec.refresh.version", "a model version >= 1", absl::StrCat(r.version()));
  }
  const std::string dir = ModelVersionPath(models_dir, r.version());
  if (!PathExists(dir)) {
    return absl::NotFoundError(absl::StrCat("spec.refresh.version: no model version ", r.version(),
                                            " in ", models_dir));
  }
  RETURN_IF_ERROR(FileField("spec.refresh.items_table", r.items_table(), true));
  RETURN_IF_ERROR(FileField("spec.refresh.text_cache", r.text_cache(), false));
  RETURN_IF_ERROR(FileField("spec.refresh.image_cache", r.image_cache(), false));
  RETURN_IF_ERROR(FileField("spec.refresh.images_table", r.images_table(), false));
  RETURN_IF_ERROR(FileField("spec.refresh.vocab", r.vocab(), false));
  RETURN_IF_ERROR(FileField("spec.refresh.weights", r.weights(), false));
  RETURN_IF_ERROR(FileField("spec.refresh.image_weights", r.image_weights(), false));
  absl::StatusOr<std::unique_ptr<ModelVersion>> parent = ModelVersion::Open(dir);
  if (!parent.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("spec.refresh.version: version ", r.version(),
                                                      " does not open: ", parent.status().message()));
  }
  absl::StatusOr<ItemEmbeddings> items = (*parent)->ReadItemEmbeddings();
  if (!items.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("spec.refresh.version: ", items.status().message()));
  }
  absl::StatusOr<std::vector<ItemTableRow>> catalog = ReadItemTable(r.items_table());
  if (!catalog.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.refresh.items_table: ", catalog.status().message()));
  }
  std::unique_ptr<HiddenStateCache> caches[2];
  const std::string* paths[2] = {&r.text_cache(), &r.image_cache()};
  for (int i = 0; i < 2; ++i) {
    if (paths[i]->empty()) continue;
    absl::StatusOr<std::unique_ptr<HiddenStateCache>> c = HiddenStateCache::Open(*paths[i]);
    if (!c.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          RefreshCacheField(i == 0 ? "text" : "image"), ": ", QuoteUserInput(*paths[i]),
          " is not a hidden-state cache: ", c.status().message()));
    }
    caches[i] = *std::move(c);
  }
  ASSIGN_OR_RETURN(std::vector<RefreshSideInput> sides,
                   RefreshSidesFor((*parent)->manifest(), *catalog, caches[0].get(),
                                   caches[1].get(), r.images_table()));
  std::vector<std::string> keys;
  for (const ItemTableRow& row : *catalog) keys.push_back(row.key);
  ASSIGN_OR_RETURN(RefreshPlan plan,
                   PlanRefresh((*parent)->manifest(), items->keys, keys, std::move(sides)));
  // Where something must be encoded, the backbone has to be one that can be
  // re-run.
  for (const RefreshSidePlan& side : plan.sides) {
    if (side.encoded == 0) continue;
    const HiddenStateCacheInfo& info = side.cache->info();
    const std::string field = RefreshCacheField(side.modality);
    if (absl::StartsWith(info.backbone, "synthetic-")) {
      return absl::FailedPreconditionError(absl::StrCat(
          field, ": ", side.encoded, " items are new or changed, but the cache's backbone ",
          QuoteUserInput(info.backbone), " is synthetic (random demo states) and cannot "
          "encode them"));
    }
    if (side.modality == "image") {
      // The worker re-creates the ViT from the same recorded config.
      absl::Status vit = CacheViTConfig(field, info).status();
      if (!vit.ok()) {
        return absl::Status(vit.code(), absl::StrCat(vit.message(), " (", side.encoded,
                                                     " items need encoding)"));
      }
      continue;
    }
    absl::StatusOr<StandinTextOptions> standin = StandinTextOptionsOf(info);
    if (standin.ok()) continue;
    if (!absl::IsNotFound(standin.status())) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", standin.status().message()));
    }
    if (r.vocab().empty()) {
      return InvalidField("spec.refresh.vocab",
                          absl::StrCat("the WordPiece vocabulary of the backbone ",
                                       QuoteUserInput(info.backbone), " (", side.encoded,
                                       " items need encoding)"),
                          "''");
    }
  }
  return absl::OkStatus();
}

// Where a train job's worker keeps its per-epoch resumable state
// (trainer/training/epoch_checkpoint.h: <dir>/epoch-<N>/state.json marks a
// complete epoch).
std::string CheckpointDir(const JobManagerOptions& o, int64_t id) {
  return JoinPath(JobDir(o, id), "checkpoint");
}

int LastEpoch(const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir);
  int last = 0;
  if (!names.ok()) return 0;
  for (const std::string& n : *names) {
    int e = 0;
    if (absl::StartsWith(n, "epoch-") && absl::SimpleAtoi(n.substr(6), &e) &&
        PathExists(JoinPath(JoinPath(dir, n), "state.json"))) {
      last = std::max(last, e);
    }
  }
  return last;
}

std::string TailOfFile(const std::string& path, size_t bytes) {
  absl::StatusOr<std::string> s = ReadFileToString(path);
  if (!s.ok()) return "";
  std::string t = s->size() > bytes ? s->substr(s->size() - bytes) : *s;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(const JobManagerOptions& in) {
  JobManagerOptions o = in;
  if (o.data_dir.empty()) return InvalidField("data_dir", "a directory", "''");
  if (o.worker_path.empty()) return InvalidField("worker_path", "the job_worker binary", "''");
  if (o.models_dir.empty()) o.models_dir = JoinPath(o.data_dir, "models");
  if (o.devices.empty()) return InvalidField("devices", "at least one device", "none");
  RETURN_IF_ERROR(CheckRange("max_queued_jobs", o.max_queued_jobs, 1, 1000000));
  RETURN_IF_ERROR(CheckRange("worker_threads", o.worker_threads, 1, 256));  // the Trainer's bound
  if (o.cancel_grace < absl::ZeroDuration() || o.cancel_grace > absl::Minutes(10)) {
    return InvalidField("cancel_grace", "0s..10m", absl::FormatDuration(o.cancel_grace));
  }
  for (const std::string& d : o.devices) {
    if (d == "cpu") continue;
    if (absl::StartsWith(d, "cuda")) {
      if (!PathExists("/dev/nvidiactl")) {
        return absl::FailedPreconditionError(
            absl::StrCat("devices: ", QuoteUserInput(d), " asked for, but this machine has no CUDA device"));
      }
      continue;
    }
    return InvalidField("devices", "cpu or cuda:N", QuoteUserInput(d));
  }
  RETURN_IF_ERROR(CreateDirectories(JoinPath(o.data_dir, "jobs")));
  RETURN_IF_ERROR(CreateDirectories(o.models_dir));
  std::unique_ptr<JobManager> m(new JobManager(o));
  ASSIGN_OR_RETURN(m->store_, JobStore::Open(JoinPath(o.data_dir, "jobs.sqlite")));
  if (!o.retrieval.empty()) {
    RetrievalClient::Options co;
    co.target = o.retrieval;
    ASSIGN_OR_RETURN(m->retrieval_, RetrievalClient::Create(co));
  }
  {
    absl::MutexLock lock(&m->mu_);
    for (const std::string& d : o.devices) m->queues_[d];
  }
  RETURN_IF_ERROR(m->Recover());
  MetricsRegistry::Global().AddCollectHook([mp = m.get()] { mp->UpdateMetrics(); });
  for (const std::string& d : o.devices) {
    m->threads_.emplace_back([mp = m.get(), d] { mp->DeviceLoop(d); });
  }
  return m;
}

JobManager::~JobManager() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, live] : live_) {
      if (live.pid > 0) kill(live.pid, SIGKILL);
    }
  }
  for (std::thread& t : threads_) t.join();
}

absl::Status JobManager::Recover() {
  ASSIGN_OR_RETURN(std::vector<v1::Job> jobs,
                   store_->InStates({v1::JOB_RUNNING, v1::JOB_PUBLISHING, v1::JOB_QUEUED}));
  for (const v1::Job& j : jobs) {
    if (j.state() == v1::JOB_RUNNING) {
      if (j.version() > 0) RemoveVersionLeftovers(j.version(), /*including_final=*/true);
      RETURN_IF_ERROR(store_->Transition(j.id(), v1::JOB_FAILED, "trainer restarted",
                                         "trainer restarted during the job"));
      LOG(WARNING) << "job " << j.id() << " was running when the trainer stopped: FAILED";
    } else if (j.state() == v1::JOB_PUBLISHING) {
      RETURN_IF_ERROR(store_->Transition(
          j.id(), v1::JOB_PUBLISH_FAILED, "trainer restarted",
          "trainer restarted during the publish; PublishModelVersion retries it"));
    } else {
      bool known;
      {
        absl::MutexLock lock(&mu_);
        auto q = queues_.find(j.device());
        known = q != queues_.end();
        if (known) {
          q->second.push_back(j.id());
          if (j.kind() == v1::JOB_BUILD_CACHE) {
            active_cache_outputs_.insert(j.spec().build_cache().output());
          }
        }
      }
      if (!known) {
        RETURN_IF_ERROR(store_->Transition(
            j.id(), v1::JOB_FAILED, "device gone",
            absl::StrCat("device ", j.device(), " is not among this trainer's --devices")));
      }
    }
  }
  // Temporaries of versions whose writer died (".tmp-<version>-<pid>").
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(options_.models_dir);
  if (names.ok()) {
    for (const std::string& n : *names) {
      if (absl::StartsWith(n, ".tmp-")) {
        RemoveRecursively(JoinPath(options_.models_dir, n)).IgnoreError();
      }
    }
  }
  ASSIGN_OR_RETURN(int64_t max_recorded, store_->MaxVersion());
  absl::MutexLock lock(&mu_);
  last_version_ = max_recorded;
  return absl::OkStatus();
}

absl::Status JobManager::Validate(v1::JobSpec* spec) {
  const bool in_device_empty = spec->device().empty();
  if (spec->device().empty()) spec->set_device(options_.devices[0]);
  if (std::find(options_.devices.begin(), options_.devices.end(), spec->device()) ==
      options_.devices.end()) {
    std::string why = absl::StartsWith(spec->device(), "cuda")
                          ? " (this trainer has no such CUDA device)"
                          : "";
    return InvalidField("spec.device",
                        absl::StrCat("one of ", absl::StrJoin(options_.devices, ", "), why),
                        QuoteUserInput(spec->device()));
  }
  if (spec->publish() && retrieval_ == nullptr) {
    return absl::FailedPreconditionError(
        "spec.publish: this trainer was started without --retrieval, so it cannot publish");
  }
  if (spec->resume_from() != 0 && !spec->has_train()) {
    return InvalidField("spec.resume_from", "0 (only train jobs resume)",
                        absl::StrCat(spec->resume_from()));
  }
  if (spec->resume_from() != 0) {
    absl::StatusOr<v1::Job> prior = store_->Get(spec->resume_from());
    if (!prior.ok()) {
      return absl::NotFoundError(absl::StrCat("spec.resume_from: no job ", spec->resume_from()));
    }
    const std::string why =
        prior->kind() != v1::JOB_TRAIN ? "it is not a train job"
        : prior->state() != v1::JOB_FAILED && prior->state() != v1::JOB_CANCELLED
            ? absl::StrCat("it is ", StateLabel(prior->state()), " (only FAILED or CANCELLED jobs resume)")
        : LastEpoch(CheckpointDir(options_, prior->id())) == 0
            ? "it completed no epoch, so it left no checkpoint"
            : "";
    if (!why.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "spec.resume_from: job ", spec->resume_from(), " is not resumable: ", why));
    }
    // The resumed run is the same run: its settings are the prior job's.
    *spec->mutable_train() = prior->spec().train();
    if (in_device_empty) spec->set_device(prior->device());
  }
  switch (spec->job_case()) {
    case v1::JobSpec::kTrain: {
      const v1::TrainJobSpec& t = spec->train();
      RETURN_IF_ERROR(FileField("spec.train.interactions", t.interactions(), true));
      RETURN_IF_ERROR(FileField("spec.train.text_cache", t.text_cache(), false));
      RETURN_IF_ERROR(FileField("spec.train.image_cache", t.image_cache(), false));
      RETURN_IF_ERROR(FileField("spec.train.items_table", t.items_table(), false));
      const std::string model = t.model().empty() ? "iisan" : t.model();
      if (model != "iisan" && model != "sasrec") {
        return InvalidField("spec.train.model", "iisan or sasrec", QuoteUserInput(t.model()));
      }
      if (model == "iisan" && t.text_cache().empty() && t.image_cache().empty()) {
        return InvalidField("spec.train.text_cache", "iisan needs a text or an image cache",
                            "neither");
      }
      RETURN_IF_ERROR(CheckRange("spec.train.epochs", t.epochs(), 0, 1000));
      RETURN_IF_ERROR(CheckRange("spec.train.batch_size", t.batch_size(), 0, 1 << 16));
      RETURN_IF_ERROR(CheckRange("spec.train.max_len", t.max_len(), 0, 4096));
      RETURN_IF_ERROR(CheckRange("spec.train.embedding_dim", t.embedding_dim(), 0, 4096));
      RETURN_IF_ERROR(CheckRange("spec.train.bottleneck", t.bottleneck(), 0, 4096));
      RETURN_IF_ERROR(CheckRange("spec.train.ffn_dim", t.ffn_dim(), 0, 65536));
      RETURN_IF_ERROR(CheckRange("spec.train.patience", t.patience(), 0, 1000));
      RETURN_IF_ERROR(CheckRange("spec.train.max_steps_per_epoch", t.max_steps_per_epoch(), 0,
                                 int64_t{1} << 30));
      RETURN_IF_ERROR(CheckRange("spec.train.num_groups", t.num_groups(), 0, 4096));
      // What the worker will run: the settings with their defaults.
      const v1::TrainJobSpec run = TrainSpecWithDefaults(t);
      // Refused here, not after the queue.
      if (run.embedding_dim() % kTrainJobAttentionHeads != 0) {
        return InvalidField("spec.train.embedding_dim",
                            absl::StrCat("a multiple of the user encoder's ",
                                         kTrainJobAttentionHeads, " attention heads"),
                            absl::StrCat(run.embedding_dim()));
      }
      // NaN and negative rates were taken for "the default", infinite ones
      // ran until the divergence check.
      const double lr = t.learning_rate();
      if (lr != 0.0 && !(lr >= 1e-9 && lr <= 1.0)) {
        return InvalidField("spec.train.learning_rate", "0 (the default, 1e-3) or in [1e-9, 1]",
                            absl::StrCat(lr));
      }
      LayerSelection layers;
      absl::StatusOr<LayerMode> mode = ParseLayerMode(run.layer_mode());
      if (!mode.ok()) {
        return InvalidField("spec.train.layer_mode", "every_second, group or all",
                            QuoteUserInput(t.layer_mode()));
      }
      layers.mode = *mode;
      layers.num_groups = run.num_groups();
      absl::StatusOr<InteractionData> data = LoadInteractions(t.interactions());
      if (!data.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("spec.train.interactions: ", data.status().message()));
      }
      int64_t usable = 0;
      for (const auto& seq : data->sequences) usable += seq.size() >= 3 ? 1 : 0;
      if (usable == 0) {
        return InvalidField("spec.train.interactions",
                            "at least one user with 3 or more interactions (leave-one-out)",
                            absl::StrCat(data->num_users(), " users, none usable"));
      }
      StepSize step;
      step.batch_size = run.batch_size();
      step.max_len = run.max_len();
      step.embedding_dim = run.embedding_dim();
      step.ffn_dim = run.ffn_dim();
      step.num_heads = kTrainJobAttentionHeads;
      step.num_items = data->num_items();
      RETURN_IF_ERROR(CheckStepSize(step, "spec.train."));
      if (model == "iisan") {
        RETURN_IF_ERROR(CheckCache("spec.train.text_cache", t.text_cache(), *data, layers));
        RETURN_IF_ERROR(CheckCache("spec.train.image_cache", t.image_cache(), *data, layers));
      }
      return absl::OkStatus();
    }
    case v1::JobSpec::kBuildCache: {
      const v1::BuildCacheJobSpec& b = spec->build_cache();
      RETURN_IF_ERROR(FileField("spec.build_cache.items_table", b.items_table(), true));
      if (b.modality() == "image") {
        spec->mutable_build_cache()->set_modality("image");
        if (!b.vocab().empty()) {
          return InvalidField("spec.build_cache.vocab", "empty for an image cache (a ViT reads pixels)",
                              QuoteUserInput(b.vocab()));
        }
        RETURN_IF_ERROR(JobViTConfig("spec.build_cache.backbone", b.backbone()).status());
        RETURN_IF_ERROR(CheckImageTable("spec.build_cache.items_table", b.items_table()));
      } else if (b.modality().empty() || b.modality() == "text") {
        spec->mutable_build_cache()->set_modality("text");
        RETURN_IF_ERROR(FileField("spec.build_cache.vocab", b.vocab(), true));
        RETURN_IF_ERROR(JobBertConfig("spec.build_cache.backbone", b.backbone()).status());
      } else {
        return InvalidField("spec.build_cache.modality", "text or image",
                            QuoteUserInput(b.modality()));
      }
      RETURN_IF_ERROR(FileField("spec.build_cache.weights", b.weights(), false));
      RETURN_IF_ERROR(CheckNonEmpty("spec.build_cache.output", b.output()));
      const size_t slash = b.output().rfind('/');
      const std::string parent = slash == std::string::npos ? "." : b.output().substr(0, slash);
      if (!PathExists(parent)) {
        return absl::NotFoundError(absl::StrCat("spec.build_cache.output: directory ",
                                                QuoteUserInput(parent), " does not exist"));
      }
      // A build replaces its output when done: only a cache may be replaced,
      // so a client cannot have the service clobber any other file it can
      // write (a config, a model file, a shell profile).
      if (PathExists(b.output())) {
        absl::StatusOr<std::unique_ptr<HiddenStateCache>> existing =
            HiddenStateCache::Open(b.output());
        if (!existing.ok()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "spec.build_cache.output: ", QuoteUserInput(b.output()),
              " exists and is not a hidden-state cache (", existing.status().message(),
              "); a build replaces only a cache: name a new file or remove it"));
        }
      }
      absl::MutexLock lock(&mu_);
      if (active_cache_outputs_.count(b.output()) > 0) {
        return absl::AlreadyExistsError(absl::StrCat(
            "spec.build_cache.output: another job is already building ",
            QuoteUserInput(b.output())));
      }
      return absl::OkStatus();
    }
    case v1::JobSpec::kRefresh:
      if (!spec->refresh().backbone().empty()) {
        RETURN_IF_ERROR(JobBertConfig("spec.refresh.backbone", spec->refresh().backbone()).status());
      }
      return CheckRefresh(spec->refresh(), options_.models_dir);
    default:
      return InvalidField("spec.job", "one of train, build_cache, refresh", "none");
  }
}

absl::StatusOr<v1::Job> JobManager::Submit(const v1::JobSpec& in) {
  v1::JobSpec spec = in;
  RETURN_IF_ERROR(Validate(&spec));
  v1::JobKind kind = spec.has_train()         ? v1::JOB_TRAIN
                     : spec.has_build_cache() ? v1::JOB_BUILD_CACHE
                                              : v1::JOB_REFRESH;
  int64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    const size_t queued = queues_[spec.device()].size();
    if (queued >= static_cast<size_t>(options_.max_queued_jobs)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "spec.device: the queue of ", spec.device(), " holds ", queued,
          " jobs, its limit (--max_queued_jobs); submit again when some have started, or "
          "cancel some"));
    }
    if (kind == v1::JOB_BUILD_CACHE) {
      // Checked again under the lock that also records it: two racing
      // submits cannot both pass.
      if (!active_cache_outputs_.insert(spec.build_cache().output()).second) {
        return absl::AlreadyExistsError(absl::StrCat(
            "spec.build_cache.output: another job is already building ",
            QuoteUserInput(spec.build_cache().output())));
      }
    }
    absl::StatusOr<v1::Job> job = store_->Create(spec, kind, spec.device());
    if (!job.ok()) {
      if (kind == v1::JOB_BUILD_CACHE) active_cache_outputs_.erase(spec.build_cache().output());
      return job.status();
    }
    id = job->id();
    queues_[spec.device()].push_back(id);
  }
  LOG(INFO) << "job " << id << " (" << KindLabel(kind) << ") queued on " << spec.device();
  return Get(id);
}

absl::StatusOr<v1::Job> JobManager::Overlay(v1::Job job) {
  absl::MutexLock lock(&mu_);
  auto it = live_.find(job.id());
  if (it != live_.end() && !IsTerminal(job.state())) *job.mutable_progress() = it->second.progress;
  if (job.state() == v1::JOB_QUEUED) {
    const std::deque<int64_t>& q = queues_[job.device()];
    auto pos = std::find(q.begin(), q.end(), job.id());
    if (pos != q.end()) job.set_queue_position(static_cast<int32_t>(pos - q.begin()));
  }
  return job;
}

absl::StatusOr<v1::Job> JobManager::Get(int64_t id) {
  ASSIGN_OR_RETURN(v1::Job job, store_->Get(id));
  return Overlay(std::move(job));
}

absl::StatusOr<v1::ListJobsResponse> JobManager::List(const v1::ListJobsRequest& r) {
  RETURN_IF_ERROR(CheckRange("page_size", r.page_size(), 0, 1000));
  int64_t before = 0;
  if (!r.page_token().empty() && (!absl::SimpleAtoi(r.page_token(), &before) || before <= 0)) {
    return InvalidField("page_token", "a token from a previous ListJobs",
                        QuoteUserInput(r.page_token()));
  }
  const int size = r.page_size() == 0 ? 100 : r.page_size();
  ASSIGN_OR_RETURN(std::vector<v1::Job> jobs, store_->List(r.state(), r.kind(), before, size + 1));
  v1::ListJobsResponse out;
  for (int i = 0; i < static_cast<int>(jobs.size()) && i < size; ++i) {
    ASSIGN_OR_RETURN(*out.add_jobs(), Overlay(std::move(jobs[i])));
  }
  if (static_cast<int>(jobs.size()) > size) {
    out.set_next_page_token(absl::StrCat(out.jobs(size - 1).id()));
  }
  return out;
}

absl::StatusOr<v1::Job> JobManager::Cancel(int64_t id) {
  ASSIGN_OR_RETURN(v1::Job job, store_->Get(id));
  bool dequeued = false;
  {
    absl::MutexLock lock(&mu_);
    std::deque<int64_t>& q = queues_[job.device()];
    auto pos = std::find(q.begin(), q.end(), id);
    auto it = live_.find(id);
    if (job.state() == v1::JOB_QUEUED && pos != q.end()) {
      q.erase(pos);
      dequeued = true;
      if (job.kind() == v1::JOB_BUILD_CACHE) {
        active_cache_outputs_.erase(job.spec().build_cache().output());
      }
    } else if (it != live_.end() && !IsTerminal(job.state()) &&
               job.state() != v1::JOB_PUBLISHING) {
      // Running, or popped by its device thread and about to start (it
      // checks the flag before starting the worker).
      it->second.cancel_requested = true;
      if (it->second.pid > 0) kill(it->second.pid, SIGTERM);
      it->second.progress.set_phase("cancelling");
    } else {
      return absl::FailedPreconditionError(absl::StrCat(
          "job_id: job ", id, " is ", StateLabel(job.state()), " and cannot be cancelled"));
    }
  }
  if (dequeued) {
    Transition(id, v1::JOB_CANCELLED, "cancelled while queued");
  } else {
    Notify(id);
  }
  return Get(id);
}

void JobManager::Transition(int64_t id, v1::JobState state, const std::string& reason,
                            const std::string& error) {
  absl::Status s = store_->Transition(id, state, reason, error);
  if (!s.ok()) LOG(ERROR) << "job " << id << ": recording " << StateLabel(state) << ": " << s;
  LOG(INFO) << "job " << id << ": " << StateLabel(state) << (reason.empty() ? "" : " (")
            << reason << (reason.empty() ? "" : ")") << (error.empty() ? "" : ": ") << error;
  if (IsTerminal(state)) {
    absl::StatusOr<v1::Job> j = store_->Get(id);
    if (j.ok()) M().finished->WithLabels({KindLabel(j->kind()), StateLabel(state)})->Increment();
  }
  Notify(id);
}

void JobManager::Notify(int64_t id) {
  std::vector<std::shared_ptr<Subscriber>> subs;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [token, s] : subscribers_) {
      if (s->job_id == id) subs.push_back(s);
    }
  }
  if (subs.empty()) return;
  absl::StatusOr<v1::Job> job = Get(id);
  if (!job.ok()) return;
  for (const std::shared_ptr<Subscriber>& s : subs) {
    absl::MutexLock lock(&s->mu);
    if (s->active) s->fn(*job);
  }
}

absl::StatusOr<int64_t> JobManager::Subscribe(int64_t job_id, WatchFn fn) {
  ASSIGN_OR_RETURN(v1::Job job, Get(job_id));
  auto sub = std::make_shared<Subscriber>();
  sub->job_id = job_id;
  sub->fn = std::move(fn);
  int64_t token;
  {
    absl::MutexLock lock(&mu_);
    token = next_token_++;
    subscribers_[token] = sub;
  }
  // The current state first; a change racing with this is sent after it by
  // Notify, so the watcher never misses the final state.
  ASSIGN_OR_RETURN(job, Get(job_id));
  absl::MutexLock lock(&sub->mu);
  if (sub->active) sub->fn(job);
  return token;
}

void JobManager::Unsubscribe(int64_t token) {
  std::shared_ptr<Subscriber> sub;
  {
    absl::MutexLock lock(&mu_);
    auto it = subscribers_.find(token);
    if (it == subscribers_.end()) return;
    sub = it->second;
    subscribers_.erase(it);
  }
  absl::MutexLock lock(&sub->mu);
  sub->active = false;
}

void JobManager::DeviceLoop(std::string device) {
  while (true) {
    int64_t id = 0;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this, &device]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queues_[device].empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      id = queues_[device].front();
      queues_[device].pop_front();
      live_[id];
    }
    RunJob(id);
    M().progress->WithLabels({device})->Set(0);  // the device is idle again
    absl::MutexLock lock(&mu_);
    live_.erase(id);
  }
}

absl::StatusOr<int64_t> JobManager::AllocateVersion() {
  ASSIGN_OR_RETURN(int64_t next, NextModelVersion(options_.models_dir));
  absl::MutexLock lock(&mu_);
  last_version_ = std::max(last_version_ + 1, next);
  return last_version_;
}

void JobManager::RemoveVersionLeftovers(int64_t version, bool including_final) {
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(options_.models_dir);
  if (!names.ok()) return;
  const std::string prefix = absl::StrCat(".tmp-", version, "-");
  for (const std::string& n : *names) {
    if (absl::StartsWith(n, prefix) || (including_final && n == ModelVersionName(version))) {
      LOG(INFO) << "removing " << JoinPath(options_.models_dir, n);
      RemoveRecursively(JoinPath(options_.models_dir, n)).IgnoreError();
    }
  }
}

void JobManager::RunJob(int64_t id) {
  absl::StatusOr<v1::Job> loaded = store_->Get(id);
  if (!loaded.ok()) {
    LOG(ERROR) << "job " << id << ": " << loaded.status();
    return;
  }
  const v1::Job job = *loaded;
  auto release_output = [&] {
    if (job.kind() == v1::JOB_BUILD_CACHE) {
      absl::MutexLock lock(&mu_);
      active_cache_outputs_.erase(job.spec().build_cache().output());
    }
  };
  bool cancelled_early;
  {
    absl::MutexLock lock(&mu_);
    cancelled_early = live_[id].cancel_requested;
  }
  if (cancelled_early) {
    release_output();
    Transition(id, v1::JOB_CANCELLED, "cancelled before it started");
    return;
  }
  int64_t version = 0;
  if (job.kind() != v1::JOB_BUILD_CACHE) {
    absl::StatusOr<int64_t> v = AllocateVersion();
    absl::Status s = v.ok() ? store_->SetVersion(id, *v) : v.status();
    if (!s.ok()) {
      Transition(id, v1::JOB_FAILED, "no version number", std::string(s.message()));
      return;
    }
    version = *v;
  }
  Transition(id, v1::JOB_RUNNING, absl::StrCat("started on ", job.device()));
  std::string metrics;
  absl::Status result = Supervise(job, version, &metrics);
  release_output();
  bool cancelled;
  {
    absl::MutexLock lock(&mu_);
    cancelled = live_[id].cancel_requested;
  }
  if (!result.ok()) {
    if (version > 0) RemoveVersionLeftovers(version, /*including_final=*/true);
    if (cancelled) {
      Transition(id, v1::JOB_CANCELLED, "cancelled");
    } else {
      Transition(id, v1::JOB_FAILED, "job failed", std::string(result.message()));
    }
    return;
  }
  if (!metrics.empty()) store_->SetMetrics(id, metrics).IgnoreError();
  if (job.kind() == v1::JOB_REFRESH) {
    nlohmann::json m = nlohmann::json::parse(metrics, nullptr, false);
    if (m.is_object()) {
      for (const char* outcome : {"reused", "recomputed", "removed"}) {
        const double count = m.value(outcome, 0.0);
        M().refresh_items->WithLabels({outcome})->Set(count);
        M().refresh_items_total->WithLabels({outcome})->Increment(count);
      }
    }
  }
  // A finished run needs no resumable state.
  RemoveRecursively(CheckpointDir(options_, id)).IgnoreError();
  if (version == 0 || !job.spec().publish()) {
    Transition(id, v1::JOB_SUCCEEDED, version > 0 ? absl::StrCat("wrote version ", version) : "done");
    return;
  }
  Transition(id, v1::JOB_PUBLISHING, absl::StrCat("publishing version ", version));
  v1::PublishModelVersionResponse published;
  absl::Status p = PublishVersion(version, id, &published);
  if (p.ok()) {
    Transition(id, v1::JOB_PUBLISHED, absl::StrCat("version ", version, " is live"));
  } else {
    Transition(id, v1::JOB_PUBLISH_FAILED, "publish failed", std::string(p.message()));
  }
}

absl::Status JobManager::Supervise(const v1::Job& job, int64_t version, std::string* metrics) {
  const std::string dir = JobDir(options_, job.id());
  RETURN_IF_ERROR(CreateDirectories(dir));
  const std::string spec_path = JoinPath(dir, "spec.pb");
  RETURN_IF_ERROR(WriteFileAtomically(spec_path, job.spec().SerializeAsString()));
  const std::string log_path = JoinPath(dir, "worker.log");

  std::vector<std::string> args = {options_.worker_path,
                                   "--spec=" + spec_path,
                                   "--models_dir=" + options_.models_dir,
                                   absl::StrCat("--version=", version),
                                   absl::StrCat("--threads=", options_.worker_threads)};
  if (job.kind() == v1::JOB_TRAIN) {
    const std::string checkpoint = CheckpointDir(options_, job.id());
    if (job.spec().resume_from() != 0 && LastEpoch(checkpoint) == 0) {
      const std::string from = CheckpointDir(options_, job.spec().resume_from());
      const std::string epoch = absl::StrCat("epoch-", LastEpoch(from));
      std::error_code ec;
      std::filesystem::create_directories(JoinPath(checkpoint, epoch), ec);
      std::filesystem::copy(JoinPath(from, epoch), JoinPath(checkpoint, epoch),
                            std::filesystem::copy_options::recursive |
                                std::filesystem::copy_options::overwrite_existing,
                            ec);
      if (ec) {
        return absl::InternalError(absl::StrCat("copying job ", job.spec().resume_from(),
                                                "'s checkpoint: ", ec.message()));
      }
    }
    args.push_back("--resume_dir=" + checkpoint);
  }
  if (job.kind() == v1::JOB_REFRESH) {
    args.push_back("--cache_out=" + RefreshCachePath(options_, job.id(), "text"));
    args.push_back("--image_cache_out=" + RefreshCachePath(options_, job.id(), "image"));
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return absl::InternalError(absl::StrCat("open ", log_path, ": ", strerror(errno)));
  }
  const pid_t parent = getpid();
  // Between fork and exec only async-signal-safe calls: everything the child
  // needs was prepared above.
  const pid_t pid = fork();
  if (pid < 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    close(log_fd);
    return absl::ResourceExhaustedError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(pipe_fds[1], 1);
    dup2(log_fd, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  close(log_fd);
  {
    absl::MutexLock lock(&mu_);
    live_[job.id()].pid = pid;
    live_[job.id()].device = job.device();
    live_[job.id()].progress.set_phase("starting");
    if (live_[job.id()].cancel_requested) kill(pid, SIGTERM);
  }
  LOG(INFO) << "job " << job.id() << ": worker pid " << pid << ", log " << log_path;

  std::string buffer, done_metrics, error;
  bool done = false;
  absl::Time kill_at = absl::InfiniteFuture();
  const int fd = pipe_fds[0];
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (live_[job.id()].cancel_requested && kill_at == absl::InfiniteFuture()) {
        kill_at = absl::Now() + options_.cancel_grace;
      }
    }
    if (absl::Now() >= kill_at) {
      kill(pid, SIGKILL);
      kill_at = absl::InfiniteFuture() - absl::Seconds(1);  // once
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    const int r = poll(&pfd, 1, 100);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    char chunk[4096];
    const ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the worker exited (or closed stdout)
    buffer.append(chunk, n);
    size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      const std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      nlohmann::json e = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (e.is_discarded() || !e.is_object()) continue;
      const std::string event = e.value("event", "");
      if (event == "done") {
        done = true;
        done_metrics = e.value("metrics", "");
      } else if (event == "error") {
        error = absl::StrCat(e.value("code", "UNKNOWN"), ": ", e.value("message", ""));
      } else {
        HandleEvent(job.id(), line);
      }
    }
  }
  close(fd);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  {
    absl::MutexLock lock(&mu_);
    live_[job.id()].pid = 0;
  }
  if (done && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
    *metrics = done_metrics;
    return absl::OkStatus();
  }
  if (!error.empty()) return absl::InternalError(error);
  if (WIFSIGNALED(wstatus)) {
    return absl::InternalError(absl::StrCat(
        "worker killed by signal ", WTERMSIG(wstatus),
        WTERMSIG(wstatus) == SIGKILL ? " (out of memory, or killed)" : "", "; log ", log_path));
  }
  return absl::InternalError(absl::StrCat("worker exited with status ", WEXITSTATUS(wstatus),
                                          ": ", TailOfFile(log_path, 2000)));
}

void JobManager::HandleEvent(int64_t id, const std::string& line) {
  nlohmann::json e = nlohmann::json::parse(line, nullptr, false);
  const std::string event = e.value("event", "");
  std::string device;
  if (event == "epoch") {
    v1::EpochMetrics m;
    m.set_epoch(e.value("epoch", 0));
    m.set_loss(e.value("loss", 0.0));
    m.set_validation_hr10(e.value("hr10", 0.0));
    m.set_validation_ndcg10(e.value("ndcg10", 0.0));
    m.set_seconds(e.value("seconds", 0.0));
    m.set_items_per_second(e.value("items_per_second", 0.0));
    absl::Status s = store_->AddEpoch(id, m);
    if (!s.ok()) LOG(ERROR) << "job " << id << ": " << s;
    absl::StatusOr<v1::Job> job = store_->Get(id);
    if (job.ok()) {
      M().epoch_seconds->WithLabels({job->device()})->Observe(m.seconds());
      M().items_per_second->WithLabels({job->device()})->Set(m.items_per_second());
    }
    LOG(INFO) << "job " << id << ": epoch " << m.epoch() << " loss " << m.loss()
              << " validation HR@10 " << m.validation_hr10() << " NDCG@10 "
              << m.validation_ndcg10() << " (" << m.seconds() << " s, " << m.items_per_second()
              << " positions/s)";
    absl::MutexLock lock(&mu_);
    live_[id].progress.set_phase("validation done");
  } else if (event == "progress") {
    absl::MutexLock lock(&mu_);
    Live& l = live_[id];
    if (l.cancel_requested) return;
    v1::JobProgress& p = l.progress;
    p.set_phase(e.value("phase", ""));
    p.set_epoch(e.value("epoch", 0));
    p.set_epochs(e.value("epochs", 0));
    p.set_step(e.value("step", int64_t{0}));
    p.set_steps(e.value("steps", int64_t{0}));
    p.set_loss(e.value("loss", 0.0));
    p.set_fraction(e.value("fraction", 0.0));
    p.set_items_per_second(e.value("rate", 0.0));
    p.set_eta_seconds(e.value("eta", -1.0));
    // Of the whole job: finished epochs plus the running one's fraction.
    const double whole = p.epochs() > 0
                             ? (std::max(0, p.epoch() - 1) + p.fraction()) / p.epochs()
                             : p.fraction();
    M().progress->WithLabels({l.device})->Set(std::min(1.0, std::max(0.0, whole)));
  } else {
    return;
  }
  Notify(id);
}

absl::Status JobManager::PublishVersion(int64_t version, int64_t job_id,
                                        v1::PublishModelVersionResponse* out) {
  if (retrieval_ == nullptr) {
    return absl::FailedPreconditionError("this trainer was started without --retrieval");
  }
  std::string items_table;
  if (job_id > 0) {
    absl::StatusOr<v1::Job> job = store_->Get(job_id);
    if (job.ok()) {
      items_table = job->spec().has_train() ? job->spec().train().items_table()
                                            : job->spec().refresh().items_table();
    }
  }
  PublishOptions po;
  po.collection = options_.collection;
  po.index_factory = options_.index_factory;
  po.items_table = items_table;
  absl::MutexLock lock(&publish_mu_);
  // The staging set starts from the sidecar's newest version; when that is
  // not the version just below this one (a re-publish of an older version,
  // or a version whose predecessor never went live), the keys to drop are
  // those of the live version.
  absl::StatusOr<v1::ListVersionsResponse> listed = retrieval_->ListVersions(options_.collection);
  if (listed.ok()) {
    int64_t newest = 0;
    for (const v1::VersionInfo& v : listed->versions()) newest = std::max(newest, v.version());
    const std::string newest_dir = ModelVersionPath(options_.models_dir, newest);
    if (newest > 0 && newest != version && PathExists(newest_dir)) {
      po.previous_version_dir = newest_dir;
    }
  }
  ASSIGN_OR_RETURN(PublishResult r,
                   PublishModelVersion(ModelVersionPath(options_.models_dir, version), po,
                                       retrieval_.get()));
  if (r.live.version() != version) {
    return absl::InternalError(absl::StrCat("the sidecar reports version ", r.live.version(),
                                            " live, not ", version));
  }
  M().published_version->WithLabels({options_.collection})->Set(static_cast<double>(version));
  out->set_version(version);
  out->set_upserted(r.upserted);
  out->set_deleted(r.deleted);
  return absl::OkStatus();
}

absl::StatusOr<v1::PublishModelVersionResponse> JobManager::Publish(int64_t version) {
  if (version <= 0) return InvalidField("version", "a model version >= 1", absl::StrCat(version));
  if (!PathExists(ModelVersionPath(options_.models_dir, version))) {
    return absl::NotFoundError(absl::StrCat("version: no model version ", version, " in ",
                                            options_.models_dir));
  }
  ASSIGN_OR_RETURN(int64_t job_id, store_->JobOfVersion(version));
  v1::JobState before = v1::JOB_STATE_UNSPECIFIED;
  if (job_id > 0) {
    ASSIGN_OR_RETURN(v1::Job job, store_->Get(job_id));
    before = job.state();
    if (!IsTerminal(before)) {
      return absl::FailedPreconditionError(
          absl::StrCat("version: job ", job_id, " producing it is ", StateLabel(before)));
    }
  }
  v1::PublishModelVersionResponse out;
  absl::Status s = PublishVersion(version, job_id, &out);
  if (job_id > 0 && (before == v1::JOB_PUBLISH_FAILED || before == v1::JOB_SUCCEEDED ||
                     before == v1::JOB_PUBLISHED)) {
    if (s.ok()) {
      Transition(job_id, v1::JOB_PUBLISHED, "published by PublishModelVersion");
    } else if (before != v1::JOB_PUBLISHED) {
      Transition(job_id, v1::JOB_PUBLISH_FAILED, "PublishModelVersion failed",
                 std::string(s.message()));
    }
  }
  RETURN_IF_ERROR(s);
  return out;
}

absl::StatusOr<v1::ListModelVersionsResponse> JobManager::ListModelVersions() {
  ASSIGN_OR_RETURN(std::vector<int64_t> versions, recsys::ListModelVersions(options_.models_dir));
  v1::ListModelVersionsResponse out;
  std::set<int64_t> published;
  if (retrieval_ != nullptr) {
    absl::StatusOr<v1::ListVersionsResponse> listed = retrieval_->ListVersions(options_.collection);
    if (listed.ok()) {
      for (const v1::VersionInfo& v : listed->versions()) {
        if (v.state() == v1::VERSION_READY || v.state() == v1::VERSION_LIVE) {
          published.insert(v.version());
        }
      }
      out.set_live_version(listed->live_version());
    } else if (!absl::IsNotFound(listed.status())) {
      LOG(WARNING) << "ListModelVersions: sidecar: " << listed.status();
    }
  }
  for (int64_t v : versions) {
    absl::StatusOr<ModelVersionManifest> manifest = [&]() -> absl::StatusOr<ModelVersionManifest> {
      ASSIGN_OR_RETURN(std::string text,
                       ReadFileToString(JoinPath(ModelVersionPath(options_.models_dir, v),
                                                 kManifestFile)));
      return ManifestFromJson(text);
    }();
    if (!manifest.ok()) {
      LOG(WARNING) << "ListModelVersions: version " << v << ": " << manifest.status();
      continue;
    }
    v1::ModelVersionInfo* info = out.add_versions();
    info->set_version(v);
    info->set_kind(manifest->kind);
    info->set_metrics_json(manifest->metrics_json);
    info->set_created_time(manifest->created_at);
    info->set_data_fingerprint(manifest->data_fingerprint);
    info->set_parent_version(manifest->parent_version);
    info->set_item_count(manifest->item_count);
    ASSIGN_OR_RETURN(int64_t job_id, store_->JobOfVersion(v));
    info->set_job_id(job_id);
    info->set_published(published.count(v) > 0);
    info->set_live(out.live_version() == v);
  }
  return out;
}

void JobManager::UpdateMetrics() {
  absl::StatusOr<std::map<std::pair<v1::JobKind, v1::JobState>, int64_t>> counts =
      store_->CountByKindAndState();
  if (counts.ok()) {
    for (int k = v1::JOB_TRAIN; k <= v1::JOB_REFRESH; ++k) {
      for (int s = v1::JOB_QUEUED; s <= v1::JOB_CANCELLED; ++s) {
        const auto key = std::make_pair(static_cast<v1::JobKind>(k), static_cast<v1::JobState>(s));
        auto it = counts->find(key);
        M().jobs->WithLabels({KindLabel(key.first), StateLabel(key.second)})
            ->Set(it == counts->end() ? 0 : static_cast<double>(it->second));
      }
    }
  }
  absl::MutexLock lock(&mu_);
  for (const auto& [device, q] : queues_) {
    M().queue->WithLabels({device})->Set(static_cast<double>(q.size()));
  }
}

}  // namespace recsys
