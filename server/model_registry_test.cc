#include "server/model_registry.h"

#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/test_util.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;

TEST(ModelRegistryTest, KeepsNewestVersionsAndFollowsTheSidecar) {
  const std::string base = FreshTestDir("models_registry");
  ExportTestVersion(base, 1);
  ExportTestVersion(base, 2);
  ServableVersions sidecar;  // what the fake sidecar check answers
  sidecar.loaded = {1};
  sidecar.live = 1;
  std::vector<int64_t> changes;
  ModelRegistry::Options o;
  o.models_dir = base;
  o.versions_to_keep = 2;
  o.poll_interval = absl::Hours(1);  // refreshes are driven by the test
  o.servable = [&sidecar]() -> absl::StatusOr<ServableVersions> { return sidecar; };
  o.on_change = [&changes](int64_t live) { changes.push_back(live); };
  ASSERT_OK_AND_ASSIGN(auto registry, ModelRegistry::Create(o));

  // v2 is loaded but the sidecar does not serve it yet: v1 stays live.
  EXPECT_EQ(registry->live_version(), 1);
  ASSERT_OK_AND_ASSIGN(auto live, registry->Get(0));
  EXPECT_EQ(live->version(), 1);
  EXPECT_THAT(registry->Get(2), StatusIs(absl::StatusCode::kNotFound,
                                         HasSubstr("model.version: 2")));
  EXPECT_EQ(registry->List().size(), 2u);

  // The sidecar publishes v2: the registry switches; v1 still answers pinned.
  sidecar.loaded = {1, 2};
  sidecar.live = 2;
  registry->Refresh();
  EXPECT_EQ(registry->live_version(), 2);
  ASSERT_OK_AND_ASSIGN(auto pinned, registry->Get(1));
  EXPECT_EQ(pinned->version(), 1);

  // A sidecar rollback is followed.
  sidecar.live = 1;
  registry->Refresh();
  EXPECT_EQ(registry->live_version(), 1);

  // Version 3 arrives damaged: reported and skipped, v1/v2 keep serving.
  ExportTestVersion(base, 3);
  ASSERT_OK(WriteFileAtomically(JoinPath(base, "3/manifest.json"), "{"));
  sidecar.loaded = {1, 2, 3};
  registry->Refresh();
  EXPECT_EQ(registry->live_version(), 1);
  EXPECT_THAT(registry->Get(3), StatusIs(absl::StatusCode::kNotFound));

  // Version 4 is good: with versions_to_keep = 2 the oldest is dropped, but
  // only after the new one loaded.
  ExportTestVersion(base, 4);
  sidecar.loaded = {1, 2, 4};
  sidecar.live = 4;
  registry->Refresh();
  EXPECT_EQ(registry->live_version(), 4);
  EXPECT_THAT(registry->Get(1), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(registry->Get(2).status());
  EXPECT_EQ(changes.front(), 1);
  EXPECT_EQ(changes.back(), 4);
}

// Newer versions that never go live in the sidecar (written without a
// publish, or failing it) must not push the live one out of memory: with
// versions_to_keep = 2 and two such versions, v1 went unloaded and every
// unpinned request failed UNAVAILABLE.
TEST(ModelRegistryTest, TheSidecarsLiveVersionStaysLoadedBehindNewerOnes) {
  const std::string base = FreshTestDir("models_behind");
  ExportTestVersion(base, 1);
  ServableVersions sidecar;
  sidecar.loaded = {1};
  sidecar.live = 1;
  bool reachable = true;
  ModelRegistry::Options o;
  o.models_dir = base;
  o.versions_to_keep = 2;
  o.poll_interval = absl::Hours(1);
  o.servable = [&]() -> absl::StatusOr<ServableVersions> {
    if (!reachable) return absl::UnavailableError("sidecar down");
    return sidecar;
  };
  ASSERT_OK_AND_ASSIGN(auto registry, ModelRegistry::Create(o));
  ASSERT_EQ(registry->live_version(), 1);

  ExportTestVersion(base, 2);
  ExportTestVersion(base, 3);
  registry->Refresh();
  EXPECT_EQ(registry->live_version(), 1);
  ASSERT_OK_AND_ASSIGN(auto live, registry->Get(0));
  EXPECT_EQ(live->version(), 1);
  EXPECT_EQ(registry->List().size(), 3u);  // v3, v2 (the newest two) and v1

  // The sidecar publishes v3, then rolls back to v1, past v2: followed, and
  // v1 is loaded again though it is not among the newest two.
  sidecar.loaded = {1, 3};
  sidecar.live = 3;
  registry->Refresh();
  EXPECT_EQ(registry->live_version(), 3);
  EXPECT_EQ(registry->List().size(), 2u);  // v1 was dropped: not live anywhere
  sidecar.live = 1;
  registry->Refresh();
  EXPECT_EQ(registry->live_version(), 1);
  ASSERT_OK_AND_ASSIGN(live, registry->Get(0));
  EXPECT_EQ(live->version(), 1);

  // The sidecar unreachable while v4 and v5 arrive: v1, live here, stays.
  reachable = false;
  ExportTestVersion(base, 4);
  ExportTestVersion(base, 5);
  registry->Refresh();
  EXPECT_EQ(registry->live_version(), 1);
  ASSERT_OK(registry->Get(0).status());
  EXPECT_EQ(registry->List().size(), 3u);
}

TEST(ModelRegistryTest, NothingLiveUntilTheSidecarServesAVersion) {
  const std::string base = FreshTestDir("models_none");
  ExportTestVersion(base, 5);
  ModelRegistry::Options o;
  o.models_dir = base;
  o.poll_interval = absl::Hours(1);
  o.servable = []() -> absl::StatusOr<ServableVersions> { return ServableVersions(); };
  ASSERT_OK_AND_ASSIGN(auto registry, ModelRegistry::Create(o));
  EXPECT_EQ(registry->live_version(), 0);
  EXPECT_THAT(registry->Get(0), StatusIs(absl::StatusCode::kUnavailable));
  o.versions_to_keep = 0;
  EXPECT_THAT(ModelRegistry::Create(o), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace recsys
