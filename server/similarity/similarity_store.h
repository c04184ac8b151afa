// The similarity endpoint's logic, free of gRPC serving: collections of
// translation examples or image cases, each with its CollectionEncoder,
// whose vectors live in the retrieval sidecar (through RetrievalClient).
//
// Sidecar layout, for a collection `c`: "sim.c.src" holds one vector per
// entry (the example's source, or the image) with the entry's fields as
// payload; translation collections also keep "sim.c.tgt" (the targets'
// vectors, for MATCH_SOURCE_TO_TARGET); image collections whose index is not
// "Flat" keep "sim.c.exact" (a Flat copy, for Evaluate's recall). The
// sidecar collections share version numbers: version N of the similarity
// collection is version N of each.
//
// Write path: Index* validates a whole batch (decoding every image) before
// staging any of it, so a refused batch changes nothing. Publish fits a
// weight-free encoder on every entry (published and staged), writes the
// fitted state to `state_dir/<c>/v<N>.state` (checksummed by the embedder),
// embeds every entry and upserts them all; a fixed encoder (BERT, ViT,
// TorchScript: the same vectors whatever else is indexed) embeds and
// upserts only the staged entries, the sidecar's next version being its
// previous one plus those (unless the sidecar stages fewer entries than
// are published here, e.g. after a rollback outside this service: then
// every entry, as for a weight-free one). It then publishes version N in
// the sidecar and waits for it (the version must hold exactly the merged
// entry count),
// writes the entries to `v<N>.entries`, and only then records N in
// `state_dir/<c>/collection.pb` (written atomically, with a CRC-32C) and
// makes it live here. Queries always pin the version
// whose encoder made the query vector.
//
// Restart: collections, their fitted encoders, label counts and the live
// version's entries (`state_dir/<c>/v<N>.entries`, stored_entries.h, written
// before the record names N live) are read back from state_dir; queries are
// answered at once, and the next Publish refits on the restored entries
// plus whatever is indexed after the restart, as if there had been none.
// A collection whose entries file is missing or damaged still answers
// queries but refuses Index calls (FAILED_PRECONDITION with the reason).
// Staged, unpublished entries are durable: each acknowledged Index batch is
// one record of `state_dir/<c>/staged-<live>.log` (StagingLog,
// staging_log.h), fdatasync'd before Index returns (a batch that cannot
// be logged is refused and not staged), replayed at start after the
// published entries, and started over once a Publish is live. A damaged
// log (not just a torn tail) leaves the collection answering queries but
// refusing Index and Publish (FAILED_PRECONDITION naming file and offset).
//
// States (SimilarityCollectionInfo.state): a collection whose record is
// damaged or whose encoder cannot be re-created or no longer matches its
// recorded fingerprint (a TorchScript module or BERT weights file changed
// or missing) is restored FAILED with the reason: the server still starts,
// the other collections serve, and every call naming it but Describe, List
// and Drop answers FAILED_PRECONDITION. The two cases above (damaged
// staging log, missing entries) are DEGRADED. The gauge
// recsys_similarity_collections{state="ok|degraded|failed"} counts them.
//
// Thread-safety: thread-safe. Queries take a shared_ptr to the immutable
// published state under a short lock; Publish builds aside and swaps it in;
// one Publish per collection at a time (others get FAILED_PRECONDITION).
#ifndef RECSYS_SERVER_SIMILARITY_SIMILARITY_STORE_H_
#define RECSYS_SERVER_SIMILARITY_SIMILARITY_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/similarity.pb.h"
#include "retrieval/client/retrieval_client.h"

namespace recsys {
namespace similarity {

class CollectionEncoder;

struct SimilarityStoreOptions {
  std::string state_dir;                  // required
  int64_t max_sentence_bytes = 64 << 10;  // source / target of an example, and queries
  int64_t max_image_bytes = 16 << 20;     // one encoded image
  int max_image_side = 8192;
  int max_examples_k = 20;
  int max_images_k = 100;
  int64_t max_entries = 2'000'000;        // per collection, staged + published
  int max_key_bytes = 256;
  int max_label_bytes = 1024;
  int max_labels = 32;                    // per image case
  int search_batch = 256;                 // queries per sidecar Search (Evaluate)
  // false: the staging log is written but not fdatasync'd, so a power loss
  // can lose acknowledged batches (similarity_bench's "without the fsync"
  // side only).
  bool sync_staging_log = true;
};

// Where a query spent its time (the benchmark reads these).
struct QueryTiming {
  double encode_seconds = 0;  // decoding + embedding
  double search_seconds = 0;  // sidecar calls
};

class SimilarityStore {
 public:
  // Reads back every collection under options.state_dir. `retrieval` is not
  // owned and must outlive the store.
  static absl::StatusOr<std::unique_ptr<SimilarityStore>> Create(
      const SimilarityStoreOptions& options, RetrievalClient* retrieval);
  ~SimilarityStore();

  absl::StatusOr<v1::SimilarityCollectionInfo> CreateCollection(
      const v1::SimilarityCollectionConfig& config) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::SimilarityCollectionInfo> Describe(const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<v1::SimilarityCollectionInfo> List() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Drop(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);

  // Stage a whole batch or nothing; returns the staged count afterwards.
  absl::StatusOr<int64_t> IndexExamples(const std::string& name,
                                        const std::vector<v1::TranslationExample>& examples)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<int64_t> IndexImages(const std::string& name,
                                      const std::vector<v1::ImageCase>& cases,
                                      const v1::Window* window) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::PublishSimilarityResponse> Publish(const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<v1::SelectExamplesResponse> SelectExamples(
      const v1::SelectExamplesRequest& request, QueryTiming* timing = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::SearchImagesResponse> SearchImages(const v1::SearchImagesRequest& request,
                                                        QueryTiming* timing = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::EvaluateResponse> Evaluate(const v1::EvaluateRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The names of the sidecar collections (tests, tools).
  static std::string SourceCollection(const std::string& name) { return "sim." + name + ".src"; }
  static std::string TargetCollection(const std::string& name) { return "sim." + name + ".tgt"; }
  static std::string ExactCollection(const std::string& name) { return "sim." + name + ".exact"; }

 private:
  struct Published;   // one version: its encoder, label counts
  struct Collection;  // config, staging, published versions
  SimilarityStore(SimilarityStoreOptions options, RetrievalClient* retrieval);
  absl::Status Load() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::shared_ptr<Collection>> Find(const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Find, and FAILED_PRECONDITION for a FAILED collection (every call but
  // Describe, List and Drop).
  absl::StatusOr<std::shared_ptr<Collection>> FindUsable(const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Sets recsys_similarity_collections{state} from collections_.
  void UpdateStateGauge() ABSL_LOCKS_EXCLUDED(mu_);
  // Stages a validated batch (key -> entry) whole, or refuses it; `kept`
  // names what a restart loses ("texts", "pixels"). Defined in the .cc.
  template <typename Batch>
  absl::StatusOr<int64_t> Stage(Collection& c, Batch batch, const char* kept)
      ABSL_LOCKS_EXCLUDED(mu_);
  v1::SimilarityCollectionInfo InfoLocked(const Collection& c) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::shared_ptr<const Published>> Pinned(const Collection& c,
                                                          int64_t version,
                                                          const std::string& fingerprint)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<float>> QueryImageVector(const Collection& c,
                                                      const Published& p,
                                                      const std::string& bytes,
                                                      const v1::Window* window,
                                                      std::string* study)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status WriteRecord(const Collection& c, int64_t live,
                           const std::map<std::string, std::map<std::string, int64_t>>& labels)
      ABSL_LOCKS_EXCLUDED(mu_);

  const SimilarityStoreOptions options_;
  RetrievalClient* const retrieval_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Collection>> collections_ ABSL_GUARDED_BY(mu_);
};

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_SIMILARITY_STORE_H_
