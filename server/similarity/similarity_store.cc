#include "server/similarity/similarity_store.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "common/validation.h"
#include "server/similarity/collection_encoder.h"
#include "server/similarity/collection_record.pb.h"
#include "server/similarity/example_selector.h"
#include "server/similarity/medical_image.h"
#include "server/similarity/precision_at_n.h"
#include "server/similarity/prompt_template.h"
#include "server/similarity/staging_log.h"
#include "server/similarity/stored_entries.h"

namespace recsys {
namespace similarity {
namespace {

constexpr char kRecordFile[] = "collection.pb";
constexpr int kVersionsKept = 3;

using LabelCountMap = std::map<std::string, std::map<std::string, int64_t>>;

struct Entry {
  std::map<std::string, std::string> payload;
  std::string source;           // translation examples
  std::string target;
  std::vector<float> features;  // image cases (CollectionEncoder::ImageFeatures)
};

double Seconds(absl::Time since) { return absl::ToDoubleSeconds(absl::Now() - since); }

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    int n = 0;
    uint32_t cp = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else return false;
    for (int j = 1; j <= n; ++j) {
      if (i + j >= s.size()) return false;
      const unsigned char d = s[i + j];
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

absl::Status CheckText(absl::string_view field, absl::string_view value, int64_t max_bytes) {
  RETURN_IF_ERROR(CheckNonEmpty(field, value, max_bytes));
  if (!IsValidUtf8(value)) return InvalidField(field, "valid UTF-8", QuoteUserInput(value));
  return absl::OkStatus();
}

absl::Status CheckName(absl::string_view field, absl::string_view name) {
  const bool ok = !name.empty() && name.size() <= 100 &&
                  std::all_of(name.begin(), name.end(), [](char ch) {
                    return absl::ascii_isalnum(ch) || ch == '_' || ch == '.' || ch == '-';
                  });
  if (!ok) return InvalidField(field, "[A-Za-z0-9_.-]{1,100}", QuoteUserInput(name));
  return absl::OkStatus();
}

absl::Status CheckKey(absl::string_view field, absl::string_view key, int max_bytes) {
  const bool ok = !key.empty() && static_cast<int>(key.size()) <= max_bytes &&
                  std::all_of(key.begin(), key.end(),
                              [](char ch) { return ch >= 0x20 && ch < 0x7f; });
  if (!ok) {
    return InvalidField(field, absl::StrCat("1..", max_bytes, " printable ASCII characters"),
                        QuoteUserInput(key));
  }
  return absl::OkStatus();
}

absl::Status SidecarError(absl::string_view what, const grpc::Status& status) {
  const absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(), absl::StrCat("retrieval sidecar (", what, "): ", s.message()));
}

std::string StatePath(const std::string& dir, int64_t version) {
  return JoinPath(dir, absl::StrCat("v", version, ".state"));
}

std::string EntriesPath(const std::string& dir, int64_t version) {
  return JoinPath(dir, absl::StrCat("v", version, ".entries"));
}

void ToStored(const std::string& key, const Entry& e, StoredEntry* out) {
  out->set_key(key);
  out->mutable_payload()->insert(e.payload.begin(), e.payload.end());
  out->set_source(e.source);
  out->set_target(e.target);
  out->mutable_features()->Assign(e.features.begin(), e.features.end());
}

Entry FromStored(StoredEntry& s) {
  Entry e;
  e.payload.insert(s.payload().begin(), s.payload().end());
  e.source = std::move(*s.mutable_source());
  e.target = std::move(*s.mutable_target());
  e.features.assign(s.features().begin(), s.features().end());
  return e;
}

// The published entries of `version` as v<N>.entries wrote them.
absl::StatusOr<std::map<std::string, Entry>> ReadEntries(const std::string& dir, int64_t version,
                                                         int64_t expected_count) {
  const std::string path = EntriesPath(dir, version);
  ASSIGN_OR_RETURN(std::vector<StoredEntry> stored, ReadStoredEntries(path));
  std::map<std::string, Entry> out;
  for (StoredEntry& s : stored) {
    if (!out.emplace(s.key(), FromStored(s)).second) {
      return absl::DataLossError(absl::StrCat(path, ": key ", QuoteUserInput(s.key()), " twice"));
    }
  }
  if (static_cast<int64_t>(out.size()) != expected_count) {
    return absl::DataLossError(absl::StrCat(path, ": ", out.size(), " entries, the record says ",
                                            expected_count));
  }
  return out;
}

bool IsFlat(const std::string& factory) { return factory.empty() || factory == "Flat"; }

}  // namespace

struct SimilarityStore::Published {
  int64_t version = 0;
  std::shared_ptr<const CollectionEncoder> encoder;
  int64_t entry_count = 0;
  LabelCountMap label_counts;
};

struct SimilarityStore::Collection {
  v1::SimilarityCollectionConfig config;
  std::string dir;
  std::shared_ptr<const CollectionEncoder> base;  // unfitted, or the fixed encoder
  std::map<int64_t, std::shared_ptr<const Published>> versions;
  int64_t live = 0;
  std::map<std::string, Entry> entries;  // as of the live version
  std::map<std::string, Entry> staged;
  // Why the published entries are not in `entries` ("" when they are): a
  // collection restored without a readable v<N>.entries file.
  std::string raw_lost;
  // The acknowledged batches of `staged` on disk (staging_log.h); null
  // when it could not be opened. Guarded by stage_mu, which Stage holds
  // from its checks to the staged set's update, and Publish while it takes
  // the staged set, so that no batch is logged but missed by a Publish.
  // Lock order: stage_mu, then the store's mu_.
  absl::Mutex stage_mu;
  std::unique_ptr<StagingLog> log;
  // Why the staging log refuses writes ("" when it does not): damage found
  // at start, or a log that could not be opened.
  std::string log_damage;
  // Why the collection could not be restored at start ("" when it was):
  // its record, or its encoder (a changed or missing model file). Only
  // config and dir are set then; Describe, List and Drop still work.
  std::string failed;
  bool publishing = false;
  bool text() const { return config.kind() == v1::SIMILARITY_TRANSLATION_EXAMPLES; }
  bool exact_copy() const { return !text() && !IsFlat(config.index_factory()); }
};

SimilarityStore::SimilarityStore(SimilarityStoreOptions options, RetrievalClient* retrieval)
    : options_(std::move(options)), retrieval_(retrieval) {}
SimilarityStore::~SimilarityStore() = default;

absl::StatusOr<std::unique_ptr<SimilarityStore>> SimilarityStore::Create(
    const SimilarityStoreOptions& options, RetrievalClient* retrieval) {
  if (options.state_dir.empty()) return absl::InvalidArgumentError("state_dir: required");
  RETURN_IF_ERROR(CreateDirectories(options.state_dir));
  std::unique_ptr<SimilarityStore> store(new SimilarityStore(options, retrieval));
  RETURN_IF_ERROR(store->Load());
  return store;
}

absl::Status SimilarityStore::Load() {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(options_.state_dir));
  for (const std::string& name : names) {
    const std::string dir = JoinPath(options_.state_dir, name);
    const std::string path = JoinPath(dir, kRecordFile);
    if (!PathExists(path)) continue;
    auto c = std::make_shared<Collection>();
    c->config.set_name(name);
    c->dir = dir;
    // Everything that makes the collection unusable (its record, its
    // encoder); a failure leaves it FAILED with the reason, and the other
    // collections are restored and served.
    auto restore = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
      const size_t nl = bytes.find('\n');
      uint32_t crc = 0;
      CollectionRecord record;
      if (nl != 8 || !absl::SimpleHexAtoi(absl::string_view(bytes).substr(0, 8), &crc) ||
          Crc32c(absl::string_view(bytes).substr(nl + 1)) != crc ||
          !record.ParseFromString(bytes.substr(nl + 1))) {
        return absl::DataLossError(absl::StrCat(path, ": damaged collection record"));
      }
      c->config = record.config();
      ASSIGN_OR_RETURN(c->base, CreateCollectionEncoder(c->config.kind(), c->config.encoder()));
      if (record.live_version() > 0) {
        std::string state;
        if (c->base->needs_fit()) {
          ASSIGN_OR_RETURN(state, ReadFileToString(StatePath(dir, record.live_version())));
        }
        auto p = std::make_shared<Published>();
        p->version = record.live_version();
        p->entry_count = record.entry_count();
        ASSIGN_OR_RETURN(p->encoder, RestoreCollectionEncoder(c->config.kind(),
                                                              c->config.encoder(), state));
        if (p->encoder->fingerprint() != record.encoder_fingerprint()) {
          return absl::DataLossError(absl::StrCat(
              "the encoder's fingerprint ", p->encoder->fingerprint(),
              " is not the recorded ", record.encoder_fingerprint(),
              " (a model or weights file changed since the collection was published)"));
        }
        for (const auto& [field, counts] : record.label_counts()) {
          p->label_counts[field].insert(counts.counts().begin(), counts.counts().end());
        }
        c->live = p->version;
        c->versions[p->version] = std::move(p);
        // Without its entries a collection still answers queries; it only
        // cannot take more entries (a weight-free encoder refits on all).
        absl::StatusOr<std::map<std::string, Entry>> entries =
            ReadEntries(dir, c->live, record.entry_count());
        if (entries.ok()) {
          c->entries = std::move(*entries);
        } else {
          c->raw_lost = std::string(entries.status().message());
          LOG(ERROR) << "similarity collection " << c->config.name()
                     << " answers queries but takes no new entries: " << c->raw_lost;
        }
      }
      return absl::OkStatus();
    };
    const absl::Status restored = restore();
    if (!restored.ok()) {
      c->failed = absl::StrCat(dir, ": ", restored.message());
      c->base.reset();
      c->versions.clear();
      c->entries.clear();
      c->live = 0;
      LOG(ERROR) << "SIMILARITY COLLECTION FAILED: " << c->config.name()
                 << " could not be restored and answers no calls but Describe, List and "
                 << "Drop; the other collections serve: " << c->failed;
      absl::MutexLock lock(&mu_);
      collections_[c->config.name()] = std::move(c);
      continue;
    }
    // Acknowledged batches staged on the live version, in the order they
    // were acknowledged (a later batch's key replaces an earlier one's).
    StagingReplay replay;
    absl::StatusOr<std::unique_ptr<StagingLog>> log = StagingLog::Open(
        dir, c->live,
        [&](StagedBatch batch) {
          for (StoredEntry& s : *batch.mutable_entries()) c->staged[s.key()] = FromStored(s);
        },
        &replay);
    if (!log.ok()) {
      c->log_damage = std::string(log.status().message());
    } else {
      c->log = std::move(*log);
      c->log->set_sync_for_benchmark(options_.sync_staging_log);
      c->log_damage = replay.damage;
    }
    if (!c->log_damage.empty()) {
      LOG(ERROR) << "similarity collection " << c->config.name()
                 << " answers queries but takes no Index or Publish: " << c->log_damage;
    }
    // Entries files of versions that never went live (a Publish that
    // failed after writing one) are dead: only the live one is read.
    absl::StatusOr<std::vector<std::string>> listed = ListDirectory(dir);
    if (!listed.ok()) LOG(WARNING) << listed.status();
    const std::vector<std::string> files = listed.ok() ? *listed : std::vector<std::string>();
    for (const std::string& f : files) {
      int64_t v = 0;
      if (absl::StartsWith(f, "v") && absl::EndsWith(f, ".entries") &&
          absl::SimpleAtoi(absl::string_view(f).substr(1, f.size() - 9), &v) && v != c->live) {
        const absl::Status rm = RemoveRecursively(JoinPath(dir, f));
        if (!rm.ok()) LOG(WARNING) << rm;
      }
    }
    LOG(INFO) << "similarity collection " << c->config.name() << " restored at version "
              << c->live << " with " << c->entries.size() << " entries and " << c->staged.size()
              << " staged (" << replay.records << " logged batches)";
    absl::MutexLock lock(&mu_);
    collections_[c->config.name()] = std::move(c);
  }
  UpdateStateGauge();
  return absl::OkStatus();
}

void SimilarityStore::UpdateStateGauge() {
  static MetricFamily<Gauge>* const family = MetricsRegistry::Global().AddGauge(
      "recsys_similarity_collections",
      "Similarity collections by state: ok, degraded (queries answer, Index and Publish "
      "refused), failed (not restored at start; only Describe, List and Drop).",
      {"state"});
  int64_t counts[3] = {0, 0, 0};
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, c] : collections_) {
      const v1::SimilarityCollectionState st = InfoLocked(*c).state();
      ++counts[st == v1::SIMILARITY_COLLECTION_FAILED     ? 2
               : st == v1::SIMILARITY_COLLECTION_DEGRADED ? 1
                                                          : 0];
    }
  }
  family->WithLabels({"ok"})->Set(static_cast<double>(counts[0]));
  family->WithLabels({"degraded"})->Set(static_cast<double>(counts[1]));
  family->WithLabels({"failed"})->Set(static_cast<double>(counts[2]));
}

absl::Status SimilarityStore::WriteRecord(const Collection& c, int64_t live,
                                          const LabelCountMap& labels) {
  CollectionRecord record;
  *record.mutable_config() = c.config;
  record.set_live_version(live);
  if (live > 0) {
    std::shared_ptr<const Published> p;
    {
      absl::MutexLock lock(&mu_);
      auto it = c.versions.find(live);
      if (it != c.versions.end()) p = it->second;
    }
    if (p) {
      record.set_entry_count(p->entry_count);
      record.set_encoder_fingerprint(p->encoder->fingerprint());
    }
  }
  for (const auto& [field, counts] : labels) {
    auto* out = (*record.mutable_label_counts())[field].mutable_counts();
    out->insert(counts.begin(), counts.end());
  }
  const std::string body = record.SerializeAsString();
  return WriteFileAtomically(JoinPath(c.dir, kRecordFile),
                             absl::StrFormat("%08x\n%s", Crc32c(body), body));
}

v1::SimilarityCollectionInfo SimilarityStore::InfoLocked(const Collection& c) const {
  v1::SimilarityCollectionInfo info;
  *info.mutable_config() = c.config;
  if (!c.failed.empty()) {
    info.set_state(v1::SIMILARITY_COLLECTION_FAILED);
    info.set_error(c.failed);
    return info;
  }
  if (!c.log_damage.empty() || !c.raw_lost.empty()) {
    info.set_state(v1::SIMILARITY_COLLECTION_DEGRADED);
    info.set_error(!c.log_damage.empty()
                       ? absl::StrCat("staging log: ", c.log_damage,
                                      "; Index and Publish refused")
                       : absl::StrCat("published entries: ", c.raw_lost, "; Index refused"));
  } else {
    info.set_state(v1::SIMILARITY_COLLECTION_OK);
  }
  auto it = c.versions.find(c.live);
  const CollectionEncoder& e = it != c.versions.end() ? *it->second->encoder : *c.base;
  info.set_encoder_fingerprint(e.fingerprint());
  info.set_dimension(e.dimension());
  info.set_live_version(c.live);
  info.set_entry_count(it != c.versions.end() ? it->second->entry_count : 0);
  info.set_staged_count(static_cast<int64_t>(c.staged.size()));
  return info;
}

absl::StatusOr<std::shared_ptr<SimilarityStore::Collection>> SimilarityStore::Find(
    const std::string& name) {
  RETURN_IF_ERROR(CheckName("collection", name));
  absl::MutexLock lock(&mu_);
  auto it = collections_.find(name);
  if (it == collections_.end()) {
    return absl::NotFoundError(
        absl::StrCat("collection: no similarity collection ", QuoteUserInput(name)));
  }
  return it->second;
}

absl::StatusOr<std::shared_ptr<SimilarityStore::Collection>> SimilarityStore::FindUsable(
    const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, Find(name));
  if (!c->failed.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "collection: similarity collection ", QuoteUserInput(name),
        " is FAILED (not restored at start: ", c->failed,
        "); drop and recreate it"));
  }
  return c;
}

absl::StatusOr<v1::SimilarityCollectionInfo> SimilarityStore::CreateCollection(
    const v1::SimilarityCollectionConfig& config_in) {
  v1::SimilarityCollectionConfig config = config_in;
  RETURN_IF_ERROR(CheckName("config.name", config.name()));
  if (config.index_factory().empty()) config.set_index_factory("Flat");
  if (config.index_factory().size() > 128 || !IsValidUtf8(config.index_factory())) {
    return InvalidField("config.index_factory", "a FAISS factory string",
                        QuoteUserInput(config.index_factory()));
  }
  {
    absl::MutexLock lock(&mu_);
    if (collections_.count(config.name())) {
      return absl::AlreadyExistsError(absl::StrCat(
          "config.name: similarity collection ", QuoteUserInput(config.name()), " exists"));
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<CollectionEncoder> encoder,
                   CreateCollectionEncoder(config.kind(), config.encoder()));
  auto c = std::make_shared<Collection>();
  c->config = config;
  c->dir = JoinPath(options_.state_dir, config.name());
  c->base = std::move(encoder);

  std::vector<std::pair<std::string, std::string>> sidecar = {
      {SourceCollection(config.name()), config.index_factory()}};
  if (c->text()) sidecar.push_back({TargetCollection(config.name()), config.index_factory()});
  if (c->exact_copy()) sidecar.push_back({ExactCollection(config.name()), "Flat"});
  for (const auto& [name, factory] : sidecar) {
    // A leftover of a collection dropped while the sidecar was away.
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    v1::DropCollectionRequest drop;
    drop.set_collection(name);
    v1::DropCollectionResponse dropped;
    const grpc::Status ds = retrieval_->stub()->DropCollection(&ctx, drop, &dropped);
    if (!ds.ok() && ds.error_code() != grpc::StatusCode::NOT_FOUND) {
      return SidecarError("dropping a leftover collection", ds);
    }
    v1::CollectionConfig rc;
    rc.set_name(name);
    rc.set_dimension(c->base->dimension());
    rc.set_metric(v1::METRIC_INNER_PRODUCT);  // vectors are L2-normalised
    rc.set_index_factory(factory);
    rc.set_flat_fallback_when_untrainable(true);
    absl::StatusOr<v1::CollectionInfo> made = retrieval_->EnsureCollection(rc);
    if (!made.ok()) return made.status();
  }
  RETURN_IF_ERROR(CreateDirectories(c->dir));
  StagingReplay replay;
  ASSIGN_OR_RETURN(c->log, StagingLog::Open(c->dir, 0, [](StagedBatch) {}, &replay));
  c->log->set_sync_for_benchmark(options_.sync_staging_log);
  RETURN_IF_ERROR(WriteRecord(*c, 0, {}));
  v1::SimilarityCollectionInfo info;
  {
    absl::MutexLock lock(&mu_);
    collections_[config.name()] = c;
    info = InfoLocked(*c);
  }
  UpdateStateGauge();
  return info;
}

absl::StatusOr<v1::SimilarityCollectionInfo> SimilarityStore::Describe(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, Find(name));
  absl::MutexLock lock(&mu_);
  return InfoLocked(*c);
}

std::vector<v1::SimilarityCollectionInfo> SimilarityStore::List() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::SimilarityCollectionInfo> out;
  for (const auto& [name, c] : collections_) out.push_back(InfoLocked(*c));
  return out;
}

absl::Status SimilarityStore::Drop(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, Find(name));
  {
    absl::MutexLock lock(&mu_);
    if (c->publishing) {
      return absl::FailedPreconditionError("collection: a Publish is running; drop it afterwards");
    }
    collections_.erase(name);
  }
  UpdateStateGauge();
  for (const std::string& sc :
       {SourceCollection(name), TargetCollection(name), ExactCollection(name)}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    v1::DropCollectionRequest drop;
    drop.set_collection(sc);
    v1::DropCollectionResponse dropped;
    const grpc::Status ds = retrieval_->stub()->DropCollection(&ctx, drop, &dropped);
    if (!ds.ok() && ds.error_code() != grpc::StatusCode::NOT_FOUND) {
      LOG(WARNING) << "dropping " << sc << ": " << ds.error_message();
    }
  }
  return RemoveRecursively(c->dir);
}

// Adds a validated batch to the staging set, or refuses it whole.
namespace {

absl::Status LogDamaged(const std::string& damage) {
  return absl::FailedPreconditionError(absl::StrCat(
      "collection: its staging log refuses writes (", damage,
      "); acknowledged entries would be lost, so it answers queries but takes no Index or "
      "Publish until the file is restored or the collection recreated"));
}

}  // namespace

// Adds a validated batch to the staging log and then the staging set, or
// refuses it whole (a batch whose record is not on disk is not staged).
template <typename Batch>
absl::StatusOr<int64_t> SimilarityStore::Stage(Collection& c, Batch batch, const char* kept) {
  absl::MutexLock staging(&c.stage_mu);
  {
    absl::MutexLock lock(&mu_);
    if (c.publishing) return absl::FailedPreconditionError("collection: a Publish is running");
    if (!c.raw_lost.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "collection: restored after a restart without its published ", kept,
          ", which the next Publish needs (", c.raw_lost,
          "): recreate the collection to add entries"));
    }
    if (!c.log_damage.empty()) return LogDamaged(c.log_damage);
    if (static_cast<int64_t>(c.entries.size() + c.staged.size() + batch.size()) >
        options_.max_entries) {
      return absl::ResourceExhaustedError(
          absl::StrCat("collection: more than ", options_.max_entries, " entries"));
    }
  }
  if (!batch.empty()) {
    StagedBatch record;
    for (const auto& [key, entry] : batch) ToStored(key, entry, record.add_entries());
    const absl::Status logged = c.log->Append(record);
    if (!logged.ok()) {
      return absl::Status(logged.code(),
                          absl::StrCat("collection: the batch was not staged: ", logged.message()));
    }
  }
  absl::MutexLock lock(&mu_);
  for (auto& [key, entry] : batch) c.staged[key] = std::move(entry);
  return static_cast<int64_t>(c.staged.size());
}

absl::StatusOr<int64_t> SimilarityStore::IndexExamples(
    const std::string& name, const std::vector<v1::TranslationExample>& examples) {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, FindUsable(name));
  if (!c->text()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "collection: ", QuoteUserInput(name), " holds image cases, not translation examples"));
  }
  std::map<std::string, Entry> batch;
  for (size_t i = 0; i < examples.size(); ++i) {
    const v1::TranslationExample& e = examples[i];
    const std::string f = absl::StrCat("examples[", i, "]");
    RETURN_IF_ERROR(CheckKey(f + ".key", e.key(), options_.max_key_bytes));
    RETURN_IF_ERROR(CheckText(f + ".source", e.source(), options_.max_sentence_bytes));
    RETURN_IF_ERROR(CheckText(f + ".target", e.target(), options_.max_sentence_bytes));
    RETURN_IF_ERROR(CheckKey(f + ".pair", e.pair(), 64));
    if (e.has_quality() && !std::isfinite(e.quality())) {
      return InvalidField(f + ".quality", "a finite number", absl::StrCat(e.quality()));
    }
    // The encoder must accept the texts (e.g. some word characters).
    if (c->base->needs_fit()) {
      const absl::Status es = c->base->EmbedText(e.source()).status();
      if (!es.ok()) return absl::Status(es.code(), absl::StrCat(f, ".source: ", es.message()));
    }
    Entry entry;
    entry.source = e.source();
    entry.target = e.target();
    entry.payload = {{"source", e.source()}, {"target", e.target()}, {"pair", e.pair()}};
    if (e.has_quality()) entry.payload["quality"] = absl::StrFormat("%.9g", e.quality());
    if (!batch.emplace(e.key(), std::move(entry)).second) {
      return InvalidField(f + ".key", "unique within the request", QuoteUserInput(e.key()));
    }
  }
  return Stage(*c, std::move(batch), "texts");
}

absl::StatusOr<int64_t> SimilarityStore::IndexImages(const std::string& name,
                                                     const std::vector<v1::ImageCase>& cases,
                                                     const v1::Window* window) {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, FindUsable(name));
  if (c->text()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "collection: ", QuoteUserInput(name), " holds translation examples, not image cases"));
  }
  MedicalImageOptions mo;
  mo.max_bytes = options_.max_image_bytes;
  mo.max_side = options_.max_image_side;
  if (window != nullptr) {
    if (!(window->width() >= 1)) return InvalidField("window.width", ">= 1", absl::StrCat(window->width()));
    mo.window = VoiWindow{window->center(), window->width()};
  }
  std::map<std::string, Entry> batch;
  std::vector<GrayImage> images;
  std::vector<std::string> keys;
  for (size_t i = 0; i < cases.size(); ++i) {
    const v1::ImageCase& ic = cases[i];
    const std::string f = absl::StrCat("cases[", i, "]");
    RETURN_IF_ERROR(CheckKey(f + ".key", ic.key(), options_.max_key_bytes));
    if (ic.image().empty()) return InvalidField(f + ".image", "PNG, JPEG or DICOM bytes", "none");
    if (static_cast<int>(ic.labels_size()) > options_.max_labels) {
      return InvalidField(f + ".labels", absl::StrCat("at most ", options_.max_labels),
                          absl::StrCat(ic.labels_size()));
    }
    absl::StatusOr<MedicalImage> decoded = DecodeMedicalImage(ic.image(), mo);
    if (!decoded.ok()) {
      return absl::Status(decoded.status().code(),
                          absl::StrCat(f, ".image: ", decoded.status().message()));
    }
    Entry entry;
    for (const auto& [k, v] : ic.labels()) {
      const bool key_ok = !k.empty() && k.size() <= 64 &&
                          std::all_of(k.begin(), k.end(), [](char ch) {
                            return absl::ascii_islower(ch) || absl::ascii_isdigit(ch) || ch == '_';
                          });
      if (!key_ok) return InvalidField(f + ".labels", "names [a-z0-9_]{1,64}", QuoteUserInput(k));
      RETURN_IF_ERROR(CheckText(absl::StrCat(f, ".labels[", k, "]"), v, options_.max_label_bytes));
      entry.payload[k] = v;
    }
    const auto& dl = decoded->labels;
    auto fill = [&](const char* from, const char* to) {
      auto it = dl.find(from);
      if (it != dl.end() && !it->second.empty() && IsValidUtf8(it->second) &&
          !entry.payload.count(to)) {
        entry.payload[to] = it->second.substr(0, options_.max_label_bytes);
      }
    };
    fill("modality", "modality");
    fill("body_part", "body_part");
    fill("study_instance_uid", "study_id");
    images.push_back(std::move(decoded->image));
    keys.push_back(ic.key());
    if (!batch.emplace(ic.key(), std::move(entry)).second) {
      return InvalidField(f + ".key", "unique within the request", QuoteUserInput(ic.key()));
    }
  }
  absl::StatusOr<std::vector<float>> features = c->base->ImageFeaturesBatch(images);
  if (!features.ok()) {
    return absl::Status(features.status().code(), absl::StrCat("cases: ", features.status().message()));
  }
  const size_t per = images.empty() ? 0 : features->size() / images.size();
  for (size_t i = 0; i < keys.size(); ++i) {
    batch[keys[i]].features.assign(features->begin() + i * per, features->begin() + (i + 1) * per);
  }
  return Stage(*c, std::move(batch), "pixels");
}

absl::StatusOr<v1::PublishSimilarityResponse> SimilarityStore::Publish(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, FindUsable(name));
  std::map<std::string, Entry> merged;
  std::vector<std::string> staged_keys;
  int64_t published_count = 0;
  int64_t version = 0;
  {
    absl::MutexLock staging(&c->stage_mu);
    absl::MutexLock lock(&mu_);
    if (c->publishing) return absl::FailedPreconditionError("collection: a Publish is running");
    if (!c->log_damage.empty()) return LogDamaged(c->log_damage);
    if (!c->raw_lost.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "collection: restored after a restart without its published entries (", c->raw_lost,
          "): a Publish would lose them; recreate the collection"));
    }
    if (c->staged.empty()) {
      return absl::FailedPreconditionError("collection: nothing staged to publish");
    }
    c->publishing = true;
    merged = c->entries;
    published_count = static_cast<int64_t>(c->entries.size());
    for (const auto& [k, e] : c->staged) {
      merged[k] = e;
      staged_keys.push_back(k);
    }
    version = c->live + 1;
  }
  auto done = [&](absl::Status s) {
    absl::MutexLock lock(&mu_);
    c->publishing = false;
    return s;
  };
  const bool text = c->text();
  std::vector<std::string> sidecar = {SourceCollection(name)};
  if (text) sidecar.push_back(TargetCollection(name));
  if (c->exact_copy()) sidecar.push_back(ExactCollection(name));
  const int64_t n = static_cast<int64_t>(merged.size());
  // A version the sidecar built but this store never recorded (a crash in
  // between) is skipped, never reused. A fixed encoder's vectors do not
  // depend on the other entries, so only the staged entries are embedded
  // and upserted when every sidecar collection stages at least the
  // published ones (a crash after some upserts leaves it between that and
  // n: the upserts are idempotent).
  std::shared_ptr<const CollectionEncoder> encoder = c->base;
  bool incremental = !encoder->needs_fit();
  for (const std::string& sc_name : sidecar) {
    absl::StatusOr<v1::CollectionInfo> sc = retrieval_->Describe(sc_name);
    if (!sc.ok()) return done(sc.status());
    for (const v1::VersionInfo& v : sc->versions()) version = std::max(version, v.version() + 1);
    if (sc->staging_entry_count() < published_count) {
      if (incremental) {
        LOG(WARNING) << "similarity collection " << name << ": sidecar collection " << sc_name
                     << " stages " << sc->staging_entry_count() << " entries, fewer than the "
                     << published_count << " published here; re-embedding all " << n;
      }
      incremental = false;
    }
  }

  // Every entry of the new version in key order, and of those the ones to
  // embed and upsert: all of them, or (incremental) the staged ones.
  std::vector<const std::string*> all_keys, keys;
  std::vector<const Entry*> all_entries, entries;
  for (const auto& [k, e] : merged) {
    all_keys.push_back(&k);
    all_entries.push_back(&e);
  }
  if (incremental) {
    for (const std::string& k : staged_keys) {
      auto it = merged.find(k);
      keys.push_back(&it->first);
      entries.push_back(&it->second);
    }
  } else {
    keys = all_keys;
    entries = all_entries;
  }
  const int64_t m = static_cast<int64_t>(entries.size());
  const int d = encoder->dimension();
  std::vector<float> vectors, targets;
  if (text) {
    if (encoder->needs_fit()) {
      std::vector<std::string> sources;
      for (const Entry* e : entries) sources.push_back(e->source);
      absl::StatusOr<std::unique_ptr<CollectionEncoder>> fitted = encoder->FitTexts(sources);
      if (!fitted.ok()) return done(fitted.status());
      encoder = std::move(*fitted);
    }
    vectors.resize(m * d);
    targets.resize(m * d);
    for (int64_t i = 0; i < m; ++i) {
      absl::StatusOr<std::vector<float>> s = encoder->EmbedText(entries[i]->source);
      absl::StatusOr<std::vector<float>> t = encoder->EmbedText(entries[i]->target);
      if (!s.ok()) return done(s.status());
      // A target with no word characters for this encoder matches nothing.
      if (t.ok()) std::copy(t->begin(), t->end(), targets.begin() + i * d);
      std::copy(s->begin(), s->end(), vectors.begin() + i * d);
    }
  } else {
    std::vector<float> rows;
    for (const Entry* e : entries) rows.insert(rows.end(), e->features.begin(), e->features.end());
    if (encoder->needs_fit()) {
      absl::StatusOr<std::unique_ptr<CollectionEncoder>> fitted = encoder->FitFeatureRows(rows);
      if (!fitted.ok()) return done(fitted.status());
      encoder = std::move(*fitted);
    }
    absl::StatusOr<std::vector<float>> embedded = encoder->EmbedFeatureRows(rows, m);
    if (!embedded.ok()) return done(embedded.status());
    vectors = std::move(*embedded);
  }
  if (encoder->needs_fit()) {
    absl::Status w = WriteFileAtomically(StatePath(c->dir, version), encoder->Serialize());
    if (!w.ok()) return done(w);
  }
  auto upsert = [&](const std::string& collection, const std::vector<float>& v) -> absl::Status {
    absl::StatusOr<int64_t> up = retrieval_->UpsertAll(
        collection, m, [&](int64_t i, v1::Entry* out) {
          out->set_key(*keys[i]);
          out->mutable_vector()->mutable_values()->Assign(v.begin() + i * d,
                                                          v.begin() + (i + 1) * d);
          out->mutable_payload()->insert(entries[i]->payload.begin(), entries[i]->payload.end());
        });
    if (!up.ok()) return up.status();
    absl::StatusOr<v1::VersionInfo> live = retrieval_->PublishAndWait(collection, version);
    if (!live.ok()) return live.status();
    if (live->entry_count() != n) {
      return absl::DataLossError(absl::StrCat(collection, " version ", version, " holds ",
                                              live->entry_count(), " entries, not ", n));
    }
    return absl::OkStatus();
  };
  absl::Status s = upsert(SourceCollection(name), vectors);
  if (s.ok() && text) s = upsert(TargetCollection(name), targets);
  if (s.ok() && c->exact_copy()) s = upsert(ExactCollection(name), vectors);
  if (!s.ok()) return done(s);
  static MetricFamily<Counter>* const publish_entries = MetricsRegistry::Global().AddCounter(
      "recsys_similarity_publish_entries_total",
      "Entries of published similarity versions: embedded by the Publish, or reused unchanged "
      "from the previous version (fixed encoders embed only what was indexed since).",
      {"how"});
  publish_entries->WithLabels({"embedded"})->Increment(static_cast<double>(m));
  publish_entries->WithLabels({"reused"})->Increment(static_cast<double>(n - m));

  auto p = std::make_shared<Published>();
  p->version = version;
  p->encoder = encoder;
  p->entry_count = n;
  for (const auto& [k, e] : merged) {
    for (const auto& [field, value] : e.payload) {
      if (field != "source" && field != "target") ++p->label_counts[field][value];
    }
  }
  // The entries go to disk before the record names the version live, so a
  // restart finds every entry the next Publish refits on.
  s = WriteStoredEntries(EntriesPath(c->dir, version), n, [&](int64_t i, StoredEntry* out) {
    ToStored(*all_keys[i], *all_entries[i], out);
  });
  if (!s.ok()) return done(s);
  {
    absl::MutexLock lock(&mu_);
    c->versions[version] = p;
  }
  s = WriteRecord(*c, version, p->label_counts);
  if (s.ok()) {
    // Version `version` holds every staged batch (no Index runs while
    // publishing is set): the log starts over on it. Should that fail, the
    // log refuses further appends, so nothing is acknowledged into a file
    // the next start would drop as covered.
    absl::MutexLock staging(&c->stage_mu);
    const absl::Status rotated = c->log->StartOver(version);
    if (!rotated.ok()) {
      LOG(ERROR) << "similarity collection " << name << ": version " << version
                 << " is live but its staging log did not start over: " << rotated;
    }
  }
  absl::MutexLock lock(&mu_);
  c->publishing = false;
  if (!s.ok()) {
    c->versions.erase(version);
    return s;
  }
  const int64_t previous = c->live;
  c->live = version;
  c->entries = std::move(merged);
  c->staged.clear();
  // Only the live version's entries are read back; older files are dead.
  if (previous > 0) {
    const absl::Status rm = RemoveRecursively(EntriesPath(c->dir, previous));
    if (!rm.ok()) LOG(WARNING) << rm;
  }
  while (static_cast<int>(c->versions.size()) > kVersionsKept) c->versions.erase(c->versions.begin());
  v1::PublishSimilarityResponse out;
  *out.mutable_info() = InfoLocked(*c);
  out.set_embedded_entries(m);
  out.set_reused_entries(n - m);
  return out;
}

absl::StatusOr<std::shared_ptr<const SimilarityStore::Published>> SimilarityStore::Pinned(
    const Collection& c, int64_t version, const std::string& fingerprint) {
  if (version < 0) return InvalidField("version", ">= 0 (0: live)", absl::StrCat(version));
  std::shared_ptr<const Published> p;
  {
    absl::MutexLock lock(&mu_);
    if (c.live == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "collection: ", QuoteUserInput(c.config.name()), " has no published version yet"));
    }
    auto it = c.versions.find(version == 0 ? c.live : version);
    if (it == c.versions.end()) {
      return absl::NotFoundError(absl::StrCat("version: ", version, " is not loaded for ",
                                              QuoteUserInput(c.config.name())));
    }
    p = it->second;
  }
  if (!fingerprint.empty() && fingerprint != p->encoder->fingerprint()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "encoder_fingerprint: the collection's vectors were made by ",
        QuoteUserInput(p->encoder->fingerprint()), ", not ", QuoteUserInput(fingerprint)));
  }
  return p;
}

namespace {

absl::StatusOr<v1::SearchResponse> SidecarSearch(RetrievalClient* retrieval,
                                                 const v1::SearchRequest& request) {
  return retrieval->Search(request);
}

absl::StatusOr<v1::GetResponse> SidecarGet(RetrievalClient* retrieval, const std::string& coll,
                                           const std::vector<std::string>& keys, int64_t version,
                                           bool vectors) {
  v1::GetRequest req;
  req.set_collection(coll);
  for (const std::string& k : keys) req.add_keys(k);
  req.set_version(version);
  req.set_include_vectors(vectors);
  v1::GetResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  const grpc::Status s = retrieval->stub()->Get(&ctx, req, &resp);
  if (!s.ok()) return SidecarError("Get", s);
  return resp;
}

}  // namespace

absl::StatusOr<v1::SelectExamplesResponse> SimilarityStore::SelectExamples(
    const v1::SelectExamplesRequest& r, QueryTiming* timing) {
  RETURN_IF_ERROR(CheckText("source", r.source(), options_.max_sentence_bytes));
  RETURN_IF_ERROR(CheckRange("k", r.k(), 1, options_.max_examples_k));
  RETURN_IF_ERROR(CheckKey("pair", r.pair(), 64));
  if (r.match() != v1::EXAMPLE_MATCH_UNSPECIFIED && r.match() != v1::MATCH_SOURCE_TO_SOURCE &&
      r.match() != v1::MATCH_SOURCE_TO_TARGET) {
    return InvalidField("match", "an ExampleMatch value", absl::StrCat(r.match()));
  }
  ExampleSelectionOptions so;
  so.k = r.k();
  if (r.has_min_similarity()) so.min_similarity = r.min_similarity();
  if (r.has_diversity_threshold()) so.diversity_threshold = r.diversity_threshold();
  if (r.has_min_quality()) so.min_quality = r.min_quality();
  RETURN_IF_ERROR(ValidateExampleSelectionOptions(so));
  PromptTemplateOptions po;
  const v1::PromptTemplateSpec& ps = r.prompt_template();
  if (!ps.prompt().empty()) po.prompt = ps.prompt();
  if (!ps.example().empty()) po.example = ps.example();
  if (!ps.source_language().empty()) po.source_language = ps.source_language();
  if (!ps.target_language().empty()) po.target_language = ps.target_language();
  absl::StatusOr<std::unique_ptr<PromptTemplate>> prompt = PromptTemplate::Create(po);
  if (!prompt.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("prompt_template: ", prompt.status().message()));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, FindUsable(r.collection()));
  if (!c->text()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "collection: ", QuoteUserInput(r.collection()), " holds image cases; use SearchImages"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const Published> p,
                   Pinned(*c, r.version(), r.encoder_fingerprint()));
  absl::Time t0 = absl::Now();
  absl::StatusOr<std::vector<float>> query = p->encoder->EmbedText(r.source());
  if (!query.ok()) {
    return absl::Status(query.status().code(), absl::StrCat("source: ", query.status().message()));
  }
  if (timing) timing->encode_seconds += Seconds(t0);
  t0 = absl::Now();
  v1::SearchRequest search;
  search.set_collection(r.match() == v1::MATCH_SOURCE_TO_TARGET ? TargetCollection(c->config.name())
                                                                 : SourceCollection(c->config.name()));
  search.set_version(p->version);
  search.set_k(std::min(CandidatesToFetch(so), 1000));
  search.set_include_payload(true);
  (*search.mutable_payload_filter())["pair"] = r.pair();
  *search.add_queries()->mutable_vector()->mutable_values() = {query->begin(), query->end()};
  ASSIGN_OR_RETURN(v1::SearchResponse found, SidecarSearch(retrieval_, search));
  if (found.results_size() != 1) return absl::InternalError("retrieval sidecar: no result list");
  const auto& hits = found.results(0).hits();
  std::vector<ExampleCandidate> candidates(hits.size());
  for (int i = 0; i < hits.size(); ++i) {
    candidates[i].score = hits[i].score();
    auto q = hits[i].payload().find("quality");
    float quality = 0;
    if (q != hits[i].payload().end() && absl::SimpleAtof(q->second, &quality)) {
      candidates[i].quality = quality;
    }
  }
  if (so.diversity_threshold.has_value() && !hits.empty()) {
    std::vector<std::string> keys;
    for (const auto& h : hits) keys.push_back(h.key());
    ASSIGN_OR_RETURN(v1::GetResponse got, SidecarGet(retrieval_, SourceCollection(c->config.name()),
                                                     keys, p->version, true));
    std::map<std::string, const v1::Entry*> by_key;
    for (const v1::Entry& e : got.entries()) by_key[e.key()] = &e;
    for (int i = 0; i < hits.size(); ++i) {
      auto it = by_key.find(hits[i].key());
      if (it == by_key.end()) return absl::InternalError("retrieval sidecar: a hit has no vector");
      const auto& v = it->second->vector().values();
      candidates[i].vector.assign(v.begin(), v.end());
    }
  }
  if (timing) timing->search_seconds += Seconds(t0);
  ASSIGN_OR_RETURN(std::vector<size_t> chosen, similarity::SelectExamples(candidates, so));
  v1::SelectExamplesResponse response;
  std::vector<FewShotExample> shots;
  for (size_t i : chosen) {
    const v1::SearchHit& h = hits[static_cast<int>(i)];
    v1::ScoredExample* out = response.add_examples();
    out->set_score(h.score());
    v1::TranslationExample* ex = out->mutable_example();
    ex->set_key(h.key());
    auto get = [&](const char* f) {
      auto it = h.payload().find(f);
      return it == h.payload().end() ? std::string() : it->second;
    };
    ex->set_source(get("source"));
    ex->set_target(get("target"));
    ex->set_pair(get("pair"));
    if (candidates[i].quality.has_value()) ex->set_quality(*candidates[i].quality);
    shots.push_back({ex->source(), ex->target()});
  }
  ASSIGN_OR_RETURN(std::string text, (*prompt)->Render(r.source(), shots));
  response.set_prompt(std::move(text));
  response.set_encoder_fingerprint(p->encoder->fingerprint());
  response.set_version(p->version);
  return response;
}

absl::StatusOr<std::vector<float>> SimilarityStore::QueryImageVector(
    const Collection& c, const Published& p, const std::string& bytes, const v1::Window* window,
    std::string* study) {
  MedicalImageOptions mo;
  mo.max_bytes = options_.max_image_bytes;
  mo.max_side = options_.max_image_side;
  if (window != nullptr) {
    if (!(window->width() >= 1)) return InvalidField("window.width", ">= 1", absl::StrCat(window->width()));
    mo.window = VoiWindow{window->center(), window->width()};
  }
  (void)c;
  absl::StatusOr<MedicalImage> decoded = DecodeMedicalImage(bytes, mo);
  if (!decoded.ok()) {
    // The decoder's own messages may already name the field.
    const absl::string_view m = decoded.status().message();
    return absl::Status(decoded.status().code(),
                        absl::StartsWith(m, "image: ") ? std::string(m) : absl::StrCat("image: ", m));
  }
  if (study != nullptr) {
    auto it = decoded->labels.find("study_instance_uid");
    if (it != decoded->labels.end()) *study = it->second;
  }
  absl::StatusOr<std::vector<float>> features = p.encoder->ImageFeatures(decoded->image);
  if (!features.ok()) {
    return absl::Status(features.status().code(), absl::StrCat("image: ", features.status().message()));
  }
  return p.encoder->EmbedFeatureRows(*features, 1);
}

absl::StatusOr<v1::SearchImagesResponse> SimilarityStore::SearchImages(
    const v1::SearchImagesRequest& r, QueryTiming* timing) {
  RETURN_IF_ERROR(CheckRange("k", r.k(), 1, options_.max_images_k));
  if (r.query_case() == v1::SearchImagesRequest::QUERY_NOT_SET) {
    return InvalidField("query", "image bytes or a stored key", "none");
  }
  if (r.query_case() == v1::SearchImagesRequest::kImage && r.image().empty()) {
    return InvalidField("image", "PNG, JPEG or DICOM bytes", "none");
  }
  if (r.query_case() == v1::SearchImagesRequest::kKey) {
    RETURN_IF_ERROR(CheckKey("key", r.key(), options_.max_key_bytes));
  }
  if (!r.modality().empty()) RETURN_IF_ERROR(CheckText("modality", r.modality(), options_.max_label_bytes));
  if (!r.body_part().empty()) RETURN_IF_ERROR(CheckText("body_part", r.body_part(), options_.max_label_bytes));
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, FindUsable(r.collection()));
  if (c->text()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "collection: ", QuoteUserInput(r.collection()), " holds translation examples; use SelectExamples"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const Published> p,
                   Pinned(*c, r.version(), r.encoder_fingerprint()));
  const std::string coll = SourceCollection(c->config.name());
  absl::Time t0 = absl::Now();
  std::string study;
  v1::SearchRequest search;
  search.set_collection(coll);
  search.set_version(p->version);
  search.set_include_payload(true);
  if (!r.modality().empty()) (*search.mutable_payload_filter())["modality"] = r.modality();
  if (!r.body_part().empty()) (*search.mutable_payload_filter())["body_part"] = r.body_part();
  if (r.query_case() == v1::SearchImagesRequest::kImage) {
    ASSIGN_OR_RETURN(std::vector<float> v,
                     QueryImageVector(*c, *p, r.image(), r.has_window() ? &r.window() : nullptr,
                                      &study));
    *search.add_queries()->mutable_vector()->mutable_values() = {v.begin(), v.end()};
    if (timing) timing->encode_seconds += Seconds(t0);
  } else {
    ASSIGN_OR_RETURN(v1::GetResponse got, SidecarGet(retrieval_, coll, {r.key()}, p->version, false));
    if (got.entries_size() != 1) {
      return absl::NotFoundError(absl::StrCat("key: no case ", QuoteUserInput(r.key()), " in ",
                                              QuoteUserInput(r.collection())));
    }
    auto it = got.entries(0).payload().find("study_id");
    if (it != got.entries(0).payload().end()) study = it->second;
    search.add_queries()->set_key(r.key());
  }
  t0 = absl::Now();
  const bool exclude = r.exclude_same_study() && !study.empty();
  int fetch = exclude ? std::min(1000, r.k() * 4 + 16) : r.k();
  v1::SearchImagesResponse response;
  for (;;) {
    search.set_k(fetch);
    ASSIGN_OR_RETURN(v1::SearchResponse found, SidecarSearch(retrieval_, search));
    if (found.results_size() != 1) return absl::InternalError("retrieval sidecar: no result list");
    response.clear_hits();
    const auto& hits = found.results(0).hits();
    for (const v1::SearchHit& h : hits) {
      if (exclude) {
        auto s = h.payload().find("study_id");
        if (s != h.payload().end() && s->second == study) continue;
      }
      if (response.hits_size() == r.k()) break;
      v1::ImageHit* out = response.add_hits();
      out->set_key(h.key());
      out->set_score(h.score());
      out->mutable_labels()->insert(h.payload().begin(), h.payload().end());
    }
    if (response.hits_size() == r.k() || hits.size() < fetch || fetch >= 1000) break;
    fetch = std::min(1000, fetch * 4);
  }
  if (timing) timing->search_seconds += Seconds(t0);
  response.set_encoder_fingerprint(p->encoder->fingerprint());
  response.set_version(p->version);
  return response;
}

absl::StatusOr<v1::EvaluateResponse> SimilarityStore::Evaluate(const v1::EvaluateRequest& r) {
  if (r.queries_size() == 0) return InvalidField("queries", "at least one labelled query", "none");
  RETURN_IF_ERROR(CheckMaxSize("queries", r.queries_size(), 200'000));
  RETURN_IF_ERROR(CheckKey("label_field", r.label_field(), 64));
  PrecisionAtNOptions po;
  if (r.ns_size() > 0) po.ns.assign(r.ns().begin(), r.ns().end());
  int max_n = 0;
  for (int i = 0; i < static_cast<int>(po.ns.size()); ++i) {
    RETURN_IF_ERROR(CheckRange(absl::StrCat("ns[", i, "]"), po.ns[i], 1, 1000));
    max_n = std::max(max_n, po.ns[i]);
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, FindUsable(r.collection()));
  if (c->text()) {
    return absl::FailedPreconditionError("collection: Evaluate is for image-case collections");
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const Published> p, Pinned(*c, 0, ""));
  auto counts_it = p->label_counts.find(r.label_field());
  if (counts_it == p->label_counts.end()) {
    return InvalidField("label_field", "a label of the indexed cases", QuoteUserInput(r.label_field()));
  }
  std::vector<std::string> query_labels;
  std::vector<std::vector<std::string>> result_labels, approx_keys, exact_keys;
  const bool recall = r.compute_recall() && c->exact_copy();
  for (int start = 0; start < r.queries_size(); start += options_.search_batch) {
    const int end = std::min(r.queries_size(), start + options_.search_batch);
    v1::SearchRequest search;
    search.set_collection(SourceCollection(c->config.name()));
    search.set_version(p->version);
    search.set_k(max_n);
    search.set_include_payload(true);
    // Image queries are embedded together (one forward pass for a backbone).
    std::vector<GrayImage> images;
    for (int i = start; i < end; ++i) {
      const v1::LabelledQuery& q = r.queries(i);
      if (q.query_case() != v1::LabelledQuery::kImage) continue;
      MedicalImageOptions mo;
      mo.max_bytes = options_.max_image_bytes;
      mo.max_side = options_.max_image_side;
      absl::StatusOr<MedicalImage> decoded = DecodeMedicalImage(q.image(), mo);
      if (!decoded.ok()) {
        return absl::Status(decoded.status().code(),
                            absl::StrCat("queries[", i, "].image: ", decoded.status().message()));
      }
      images.push_back(std::move(decoded->image));
    }
    std::vector<float> vectors;
    if (!images.empty()) {
      ASSIGN_OR_RETURN(std::vector<float> rows, p->encoder->ImageFeaturesBatch(images));
      ASSIGN_OR_RETURN(vectors, p->encoder->EmbedFeatureRows(rows, static_cast<int64_t>(images.size())));
    }
    const int d = p->encoder->dimension();
    int next_image = 0;
    for (int i = start; i < end; ++i) {
      const v1::LabelledQuery& q = r.queries(i);
      const std::string f = absl::StrCat("queries[", i, "]");
      if (q.label().empty()) return InvalidField(f + ".label", "the query's class", "none");
      if (q.query_case() == v1::LabelledQuery::kImage) {
        const float* v = vectors.data() + static_cast<size_t>(next_image++) * d;
        *search.add_queries()->mutable_vector()->mutable_values() = {v, v + d};
      } else if (q.query_case() == v1::LabelledQuery::kKey) {
        RETURN_IF_ERROR(CheckKey(f + ".key", q.key(), options_.max_key_bytes));
        search.add_queries()->set_key(q.key());
      } else {
        return InvalidField(f, "image bytes or a stored key", "none");
      }
      query_labels.push_back(q.label());
    }
    ASSIGN_OR_RETURN(v1::SearchResponse found, SidecarSearch(retrieval_, search));
    if (found.results_size() != end - start) return absl::InternalError("retrieval sidecar: result count");
    for (const v1::SearchResult& res : found.results()) {
      std::vector<std::string> labels, keys;
      for (const v1::SearchHit& h : res.hits()) {
        auto it = h.payload().find(r.label_field());
        labels.push_back(it == h.payload().end() ? std::string() : it->second);
        keys.push_back(h.key());
      }
      result_labels.push_back(std::move(labels));
      approx_keys.push_back(std::move(keys));
    }
    if (recall) {
      search.set_collection(ExactCollection(c->config.name()));
      search.set_include_payload(false);
      ASSIGN_OR_RETURN(v1::SearchResponse exact, SidecarSearch(retrieval_, search));
      for (const v1::SearchResult& res : exact.results()) {
        std::vector<std::string> keys;
        for (const v1::SearchHit& h : res.hits()) keys.push_back(h.key());
        exact_keys.push_back(std::move(keys));
      }
    }
  }
  ASSIGN_OR_RETURN(PrecisionAtNReport report,
                   ComputePrecisionAtN(query_labels, result_labels, counts_it->second, po));
  v1::EvaluateResponse response;
  for (size_t i = 0; i < report.ns.size(); ++i) {
    v1::PrecisionAtN* out = response.add_precision();
    out->set_n(report.ns[i]);
    out->set_micro(report.micro[i]);
    out->set_macro(report.macro[i]);
  }
  if (r.compute_recall()) {
    if (recall) {
      ASSIGN_OR_RETURN(double rc, RecallAtK(approx_keys, exact_keys, max_n));
      response.set_recall(rc);
    } else {
      response.set_recall(1.0);  // a Flat index is the exact search
    }
  }
  response.set_evaluated_queries(report.evaluated_queries);
  response.set_skipped_queries(report.skipped_queries);
  response.set_evaluated_classes(report.evaluated_classes);
  return response;
}

}  // namespace similarity
}  // namespace recsys
