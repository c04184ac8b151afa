// The model-version artifact: the one contract between the trainer, which
// writes versions, and the recommendation server, the publisher and the
// embedding refresh, which read them. Writer and reader live side by side
// here (as LevelDB keeps db/log_format.h with its reader and writer).
//
// A version is a directory named by its decimal number under a models
// directory, complete or absent: it is written under a temporary name next
// to its final place (".tmp-<version>-<pid>"), every file fsynced, then
// renamed, and the parent directory fsynced (common/file_util.h).
//
// <models_dir>/<version>/
//   manifest.json                  ModelVersionManifest as JSON (below)
//   model.safetensors              every network weight (model/checkpoint.h)
//   user_encoder.safetensors       the user-encoder weights ("user_encoder.*")
//   item_keys.txt                  one key per line, row order of the embeddings
//   item_embeddings.safetensors    "embeddings" F32 [item_count, d] + the keys
//                                  ("key_bytes" U8, "key_offsets" I64)
//   state_standardization.safetensors   (IISAN with standardised states)
//                                  "<modality>.mean" / "<modality>.inv_std"
//                                  F32 [blocks, hidden]: the fixed input map
//                                  new items must be embedded with
//   item_popularity.safetensors    (optional) "counts" F32 [item_count]: each
//                                  item's occurrences in the training split,
//                                  row order of the embeddings; what the
//                                  server's cold start ranks by. Versions
//                                  without it still load (no cold start).
//
// manifest.json: {format, version, kind, parent_version, created_at, model,
//   config (NetworkConfig fields + the trainer's settings), data_fingerprint,
//   metrics, dims: {embedding, max_len}, item_count,
//   files: {name: {bytes, crc32c}}}
//   config.modalities[i].backbone_fingerprint: the frozen backbone the
//   version's caches came from (model/nn/network_config.h); what an
//   embedding refresh checks before it encodes new items.
//   kind "refresh": item embeddings re-made for an updated catalog by the
//   parent's networks (no training); parent_version names the parent, and
//   user_encoder.safetensors is the parent's, byte for byte.
//
// Reading verifies everything before anything is used: the format tag, the
// manifest's version against the directory name, every listed file's size
// and CRC-32C, the required files being listed, and the embeddings' shape
// and keys against the manifest. Any mismatch is DATA_LOSS naming the
// directory and what is wrong.
//
// Versions written before this package existed (format v1 as well) still
// load: their standardisation statistics sit in model.safetensors as
// "state_standardization.<modality>.{mean,inv_std}" tensors.
//
// Thread-safety: ModelVersion is immutable after Open(); all functions are
// safe to call concurrently on different directories.
#ifndef RECSYS_MODEL_MODEL_VERSION_H_
#define RECSYS_MODEL_MODEL_VERSION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "model/checkpoint.h"
#include "model/nn/network_config.h"

namespace recsys {

inline constexpr char kModelVersionFormat[] = "recsys.model_version.v1";
// Weights of the user encoder carry this prefix in model.safetensors and
// user_encoder.safetensors.
inline constexpr char kUserEncoderPrefix[] = "user_encoder.";

inline constexpr char kManifestFile[] = "manifest.json";
inline constexpr char kModelWeightsFile[] = "model.safetensors";
inline constexpr char kUserEncoderFile[] = "user_encoder.safetensors";
inline constexpr char kItemKeysFile[] = "item_keys.txt";
inline constexpr char kItemEmbeddingsFile[] = "item_embeddings.safetensors";
inline constexpr char kStandardizationFile[] = "state_standardization.safetensors";
inline constexpr char kItemPopularityFile[] = "item_popularity.safetensors";

struct ModelVersionManifest {
  int64_t version = 0;
  std::string kind = "train";       // "train" | "refresh"
  int64_t parent_version = 0;       // refresh: the version it re-embedded
  std::string created_at;           // RFC 3339, UTC; set by the writer
  NetworkConfig network;            // what the networks are
  // The whole "config" object: the network fields plus the trainer's
  // settings (epochs, learning rates, seed...), for people and the trainer.
  std::string config_json = "{}";
  std::string data_fingerprint;     // of the training interactions
  std::string metrics_json = "{}";  // validation / test metrics
  int64_t item_count = 0;           // set by the writer
  std::map<std::string, FileChecksum> files;  // set by the writer
};

std::string ManifestToJson(const ModelVersionManifest& manifest);
// DATA_LOSS for anything that is not a valid manifest of this format.
absl::StatusOr<ModelVersionManifest> ManifestFromJson(absl::string_view text);

// --- Naming. The only parser of version directory names.
std::string ModelVersionName(int64_t version);  // "7"
// A positive decimal without sign, spaces or leading zeros ("7", not "07").
// INVALID_ARGUMENT otherwise.
absl::StatusOr<int64_t> ParseModelVersionName(absl::string_view name);
// The version named by the last component of `dir` ("models/7/" -> 7).
absl::StatusOr<int64_t> ModelVersionOfDirectory(absl::string_view dir);
std::string ModelVersionPath(const std::string& models_dir, int64_t version);
// The versions under `models_dir`, ascending; other entries (temporaries,
// "007", files) are ignored. Empty when the directory does not exist.
absl::StatusOr<std::vector<int64_t>> ListModelVersions(const std::string& models_dir);
// One more than the newest version; 1 when there is none.
absl::StatusOr<int64_t> NextModelVersion(const std::string& models_dir);

// The fixed per-state standardisation of one modality's cached states.
struct StateStandardization {
  std::string modality;
  std::vector<int64_t> shape;  // [blocks, hidden]
  std::vector<float> mean;
  std::vector<float> inv_std;
};

struct ItemEmbeddings {
  std::vector<std::string> keys;
  int64_t dim = 0;
  std::vector<float> values;  // [keys.size() * dim]
};

// What a writer provides. `manifest.created_at`, `item_count` and `files`
// are filled in by WriteModelVersion.
struct ModelVersionContents {
  ModelVersionManifest manifest;
  ItemEmbeddings items;
  std::vector<NamedTensor> weights;  // every network parameter
  std::vector<StateStandardization> standardization;
  // Per item (row order of `items`): occurrences in the training split.
  // Empty: the version has no popularity table.
  std::vector<float> item_popularity;
  // A refresh shares its parent's user encoder: when set, this file (the
  // parent's user_encoder.safetensors) is copied byte for byte instead of
  // being written from `weights`, so both versions list the same CRC.
  std::string user_encoder_source;
};

// Writes <models_dir>/<manifest.version>. Returns the final directory.
// ALREADY_EXISTS when the version exists; INVALID_ARGUMENT for inconsistent
// contents (sizes, version <= 0, an invalid network config, no user-encoder
// weights).
absl::StatusOr<std::string> WriteModelVersion(const std::string& models_dir,
                                              const ModelVersionContents& contents);

// A verified model version directory (see the file comment).
class ModelVersion {
 public:
  static absl::StatusOr<std::unique_ptr<ModelVersion>> Open(const std::string& dir);

  const ModelVersionManifest& manifest() const { return manifest_; }
  int64_t version() const { return manifest_.version; }
  const std::string& dir() const { return dir_; }

  // The item embeddings and their keys, checked against the manifest
  // (item_count, embedding_dim, keys unique and equal to item_keys.txt).
  absl::StatusOr<ItemEmbeddings> ReadItemEmbeddings() const;
  // user_encoder.safetensors, mapped.
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> OpenUserEncoderWeights() const;
  // model.safetensors.
  absl::StatusOr<Checkpoint> ReadWeights() const;
  // Empty when the states were not standardised.
  absl::StatusOr<std::vector<StateStandardization>> ReadStandardization() const;
  // The per-item training counts, row order of the embeddings. Empty when
  // the version has none (written before popularity was stored);
  // DATA_LOSS when listed but of the wrong shape or not finite and >= 0.
  absl::StatusOr<std::vector<float>> ReadItemPopularity() const;

 private:
  ModelVersion(std::string dir, ModelVersionManifest manifest)
      : dir_(std::move(dir)), manifest_(std::move(manifest)) {}
  absl::Status Damaged(absl::string_view what) const;

  std::string dir_;
  ModelVersionManifest manifest_;
};

}  // namespace recsys

#endif  // RECSYS_MODEL_MODEL_VERSION_H_
