// One trained model version, loaded for serving: the user encoder and the
// item embeddings of a version directory written by the trainer's export
// (model/model_version.h).
//
// EncodeUser turns a history of item keys into the user vector whose inner
// product with an item embedding is the model's score for that item; the
// retrieval sidecar holds the same embeddings as collection version
// `version()`.
//
// EncodeRows is the batched form the server's EncodeBatcher calls: one
// forward for many users (server/user_encoder_kernel.h: the LibTorch
// module's last position on plain float arrays). The popularity table (optional, written at
// training time, model/model_version.h) ranks items for cold start.
//
// Thread-safety: immutable after Load(); every method may run concurrently.
#ifndef RECSYS_SERVER_SERVING_MODEL_H_
#define RECSYS_SERVER_SERVING_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace recsys {

struct ServingModelInfo {
  int64_t version = 0;
  std::string model_kind;    // "iisan" | "sasrec"
  std::string created_at;
  std::string metrics_json;  // the manifest's evaluation metrics
  std::string directory;
  int64_t num_items = 0;
  int64_t embedding_dim = 0;
  int64_t max_len = 0;
};

class ServingModel {
 public:
  // Loads `dir`: verifies the manifest's checksums, loads the item
  // embeddings and the user-encoder weights. The directory name must be the
  // decimal version number. Any damage is an error; nothing half-loaded is
  // returned.
  static absl::StatusOr<std::unique_ptr<ServingModel>> Load(
      const std::string& dir);
  ~ServingModel();

  const ServingModelInfo& info() const { return info_; }
  int64_t version() const { return info_.version; }

  // The user vector for `history` (oldest first). Keys the model does not
  // know are skipped and counted in `*unknown`; only the last max_len known
  // items are used. INVALID_ARGUMENT when no key is known.
  absl::StatusOr<std::vector<float>> EncodeUser(
      const std::vector<std::string>& history, int* unknown) const;

  // The embedding rows of the keys of `history` the model knows, oldest
  // first; `*unknown` (if non-null) counts the others.
  std::vector<int64_t> KnownRows(const std::vector<std::string>& history,
                                 int* unknown) const;

  // One forward for all `users` (each a list of rows, oldest first; only
  // the last max_len are used). Returns one user vector per user.
  // REQUIRES: every list non-empty and every row in [0, num_items).
  absl::StatusOr<std::vector<std::vector<float>>> EncodeRows(
      const std::vector<std::vector<int64_t>>& users) const;

  // Row of `key` in the item embeddings, or -1.
  int64_t RowOf(const std::string& key) const;
  // REQUIRES: 0 <= row < num_items.
  const std::string& KeyOf(int64_t row) const;
  // The embedding of `row`: embedding_dim floats. REQUIRES as KeyOf.
  const float* ItemVector(int64_t row) const;

  // Whether the version carries a popularity table (versions written
  // before it was stored do not).
  bool has_popularity() const;
  // Rows by descending training count, ties in row order; empty without a
  // popularity table.
  const std::vector<int64_t>& PopularRows() const;
  // The training count of `row` (0 without a table).
  float PopularityOf(int64_t row) const;

 private:
  struct Impl;
  explicit ServingModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  ServingModelInfo info_;
};

}  // namespace recsys

#endif  // RECSYS_SERVER_SERVING_MODEL_H_
