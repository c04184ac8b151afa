// What the retrieval sidecar can serve of an item collection, in the form the
// ModelRegistry asks for: its loaded (ready or live) versions and its live
// one. A collection not created yet serves nothing (not an error).
//
// Thread-safety: the returned function is thread-safe; `client` must
// outlive it.
#ifndef RECSYS_SERVER_SIDECAR_VERSIONS_H_
#define RECSYS_SERVER_SIDECAR_VERSIONS_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "retrieval/client/retrieval_client.h"
#include "server/model_registry.h"

namespace recsys {

std::function<absl::StatusOr<ServableVersions>()> SidecarVersions(RetrievalClient* client,
                                                                  std::string collection);

}  // namespace recsys

#endif  // RECSYS_SERVER_SIDECAR_VERSIONS_H_
