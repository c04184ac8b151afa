#include "server/sidecar_versions.h"

#include <utility>

namespace recsys {

std::function<absl::StatusOr<ServableVersions>()> SidecarVersions(RetrievalClient* client,
                                                                  std::string collection) {
  return [client, collection = std::move(collection)]() -> absl::StatusOr<ServableVersions> {
    absl::StatusOr<v1::ListVersionsResponse> listed = client->ListVersions(collection);
    ServableVersions out;
    if (absl::IsNotFound(listed.status())) return out;
    if (!listed.ok()) return listed.status();
    for (const v1::VersionInfo& v : listed->versions()) {
      if (v.state() == v1::VERSION_READY || v.state() == v1::VERSION_LIVE) {
        out.loaded.insert(v.version());
      }
    }
    out.live = listed->live_version();
    return out;
  };
}

}  // namespace recsys
