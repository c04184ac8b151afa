// The incremental embedding refresh (the nightly catalog job): a trained
// version's item embeddings re-made for an updated catalog with the
// version's own networks, without training.
//
//   1. plan (refresh_plan.h): per item and modality, reuse its cached
//      states or encode it; copy its embedding from the parent or embed it;
//   2. encode the new, changed and unknown items, per modality, with the
//      frozen backbone the version was trained with: the hashed bag-of-words
//      text stand-in is rebuilt from the cache's own backbone_config;
//      BERT-architecture text caches (build_cache) from `vocab` / `weights`
//      / `backbone`; ViT image caches from the cache's backbone_config (the
//      architecture) and `image_weights` (empty: the seeded stand-in), the
//      images read from `images_table`. Each encoder's fingerprint must equal
//      the version's backbone_fingerprint for that modality
//      (FAILED_PRECONDITION otherwise); a backbone that cannot be re-run
//      (the synthetic demo states) is FAILED_PRECONDITION when anything
//      needs encoding;
//   3. write each updated cache (every item of the catalog, content
//      fingerprints, the same backbone and dtype) to `cache_out` /
//      `image_cache_out`, atomically;
//   4. embed what the plan says through the parent's side network
//      (model.safetensors) with the parent's standardisation, reading the
//      states back from the written cache so they are rounded to its dtype
//      exactly as training saw them; also re-embed up to `verify_items`
//      unchanged items and require them to match the parent's rows (a
//      network that does not reproduce its own embeddings is refused);
//   5. write the new version through model/model_version.h: kind
//      "refresh", parent_version, the parent's weights, standardisation and
//      user_encoder.safetensors (byte for byte), popularity carried over per
//      key (0 for new items).
// Nothing is written under models_dir unless every step succeeded;
// `on_progress` returning non-OK (a cancel) stops it with that status.
//
// Thread-safety: one call per process at a time (LibTorch thread settings).
#ifndef RECSYS_TRAINER_SERVICE_EMBEDDING_REFRESH_H_
#define RECSYS_TRAINER_SERVICE_EMBEDDING_REFRESH_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace recsys {

struct RefreshProgress {
  std::string phase;      // "plan", "encode", "embed", "write"
  int64_t done = 0;
  int64_t total = 0;
};

struct EmbeddingRefreshOptions {
  std::string models_dir;       // where the parent is and the new version goes
  int64_t parent_version = 0;   // required
  int64_t version = 0;          // the new version's number (required)
  std::string items_table;      // the updated catalog (required)
  std::string text_cache;       // text states to reuse (a version with a text side)
  std::string cache_out;        // the updated text cache (a text side)
  std::string image_cache;      // image states to reuse (a version with an image side)
  std::string images_table;     // key<TAB>image path (an image side)
  std::string image_weights;    // ViT weights; empty: the seeded stand-in
  std::string image_cache_out;  // the updated image cache (an image side)
  std::string vocab;            // BERT-architecture backbones
  std::string weights;          //   empty: the seeded stand-in
  std::string backbone;         //   "LAYERSxHIDDEN"; empty: "6x256"
  std::string device = "cpu";
  int num_threads = 1;          // LibTorch intra-op threads
  int64_t batch_size = 256;     // items per encode / embed batch
  int64_t verify_items = 32;    // unchanged items re-embedded as a check
  std::function<absl::Status(const RefreshProgress&)> on_progress;
};

struct EmbeddingRefreshResult {
  int64_t version = 0;
  std::string version_dir;
  int64_t items = 0;
  int64_t reused = 0, recomputed = 0, removed = 0;
  int64_t added = 0, changed = 0, unknown = 0, reembedded = 0;
  int64_t text_encoded = 0, image_encoded = 0;  // per side
  int64_t verified = 0;
  double max_verify_difference = 0;
  double seconds = 0, encode_seconds = 0, embed_seconds = 0;
  std::string cache_out, image_cache_out;
  // The counts, times and cache path as one JSON object (Job.metrics_json).
  std::string ToJson() const;
};

absl::StatusOr<EmbeddingRefreshResult> RunEmbeddingRefresh(const EmbeddingRefreshOptions& options);

}  // namespace recsys

#endif  // RECSYS_TRAINER_SERVICE_EMBEDDING_REFRESH_H_
