// Makes a model version servable: streams its item embeddings (with each
// item's title as payload "title") into the retrieval sidecar's item
// collection and publishes them as the collection version with the model's
// number, waiting until it is live. Used by the publish command and the
// trainer service.
//
// Order of work, so that a damaged or half-sent version never goes live:
//   1. open the version (every checksum verified) and read the titles;
//   2. ensure the collection (dimension, inner product, index);
//   3. delete the keys the previous version had and this one lacks (so
//      dropped items do not come back from the staging set);
//   4. upsert every item, verifying the acknowledged count;
//   5. publish as version N and wait; the live version must hold exactly
//      the version's items.
// A failure at any step returns before the publish: the sidecar's live
// version is unchanged. Running it again (a retry) is safe.
//
// Thread-safety: one call per collection at a time.
#ifndef RECSYS_MODEL_MODEL_PUBLISHER_H_
#define RECSYS_MODEL_MODEL_PUBLISHER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "retrieval/client/retrieval_client.h"

namespace recsys {

struct PublishOptions {
  std::string collection = "items";
  std::string index_factory = "Flat";  // FAISS factory of a new collection
  std::string items_table;             // key<TAB>title; empty: no titles
  // The version this one replaces. Empty: the sidecar's newest version,
  // read from the same models directory when it is there.
  std::string previous_version_dir;
  RetrievalClient::ProgressFn progress;  // after each upserted batch
};

struct PublishResult {
  int64_t version = 0;
  int64_t upserted = 0;
  int64_t deleted = 0;        // keys of the previous version dropped
  int64_t titled = 0;         // items that got a title payload
  v1::VersionInfo live;       // as the sidecar reports it
};

absl::StatusOr<PublishResult> PublishModelVersion(const std::string& version_dir,
                                                  const PublishOptions& options,
                                                  RetrievalClient* client);

}  // namespace recsys

#endif  // RECSYS_MODEL_MODEL_PUBLISHER_H_
