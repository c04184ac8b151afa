#include "trainer/service/refresh_plan.h"

#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kBackbone[] = "bb-1";

ModelVersionManifest Parent(const std::string& cache_fingerprint) {
  ModelVersionManifest m;
  m.version = 4;
  m.network.model = "iisan";
  m.network.num_items = 3;
  m.network.modalities = {{"text", 4, {0, 2}, "standin", cache_fingerprint, true, kBackbone}};
  return m;
}

// A 3-state x 4 text cache of `items`, with or without fingerprints.
std::unique_ptr<HiddenStateCache> Cache(const std::string& name,
                                        const std::vector<ItemTableRow>& items,
                                        bool fingerprints, const std::string& backbone = kBackbone,
                                        int64_t hidden = 4) {
  std::vector<std::string> keys;
  std::vector<uint64_t> fps;
  for (const ItemTableRow& r : items) {
    keys.push_back(r.key);
    fps.push_back(ItemContentFingerprint(r.value));
  }
  std::vector<float> states(items.size() * 3 * hidden);
  for (size_t i = 0; i < states.size(); ++i) states[i] = 0.1f * i;
  HiddenStateCacheInfo info;
  info.modality = "text";
  info.backbone = "standin";
  info.fingerprint = "cache-" + name;
  info.backbone_fingerprint = backbone;
  const std::string path = TestTempPath(name + ".st");
  EXPECT_OK(WriteHiddenStateCache(path, keys, states.data(), 3, hidden, DType::kF16, info,
                                  fingerprints ? fps : std::vector<uint64_t>{}));
  absl::StatusOr<std::unique_ptr<HiddenStateCache>> c = HiddenStateCache::Open(path);
  EXPECT_OK(c.status());
  return std::move(*c);
}

const std::vector<ItemTableRow> kOld = {{"A", "red flask"}, {"B", "blue flask"}, {"C", "gold scale"}};

TEST(RefreshPlanTest, ReusesUnchangedEncodesNewAndChangedDropsRemoved) {
  auto cache = Cache("old", kOld, true);
  // B's title changed, C removed, D new.
  const std::vector<ItemTableRow> now = {{"D", "green sensor"}, {"A", "red flask"}, {"B", "blue flask v2"}};
  ASSERT_OK_AND_ASSIGN(RefreshPlan plan, PlanRefresh(Parent("cache-old"), {"A", "B", "C"}, now, *cache));
  EXPECT_THAT(plan.keys, ElementsAre("D", "A", "B"));
  EXPECT_THAT(plan.cache_row, ElementsAre(-1, 0, -1));
  EXPECT_THAT(plan.parent_row, ElementsAre(-1, 0, -1));
  EXPECT_EQ(plan.content_fingerprints[2], ItemContentFingerprint("blue flask v2"));
  EXPECT_EQ(plan.reused, 1);
  EXPECT_EQ(plan.recomputed, 2);
  EXPECT_EQ(plan.added, 1);
  EXPECT_EQ(plan.changed, 1);
  EXPECT_EQ(plan.unknown, 0);
  EXPECT_EQ(plan.removed, 1);
  EXPECT_THAT(plan.removed_keys, ElementsAre("C"));
}

TEST(RefreshPlanTest, AnOldCacheWithoutFingerprintsKnowsNoContent) {
  auto cache = Cache("nofp", kOld, false);
  ASSERT_OK_AND_ASSIGN(RefreshPlan plan, PlanRefresh(Parent("cache-nofp"), {"A", "B", "C"}, kOld, *cache));
  EXPECT_EQ(plan.recomputed, 3);
  EXPECT_EQ(plan.unknown, 3);
  EXPECT_EQ(plan.reused, 0);
  EXPECT_THAT(plan.cache_row, ElementsAre(-1, -1, -1));
}

TEST(RefreshPlanTest, StatesOfAnotherCacheAreReusedButReembedded) {
  // Same backbone and contents, but not the cache the parent was made from:
  // the embeddings are made again rather than copied.
  auto cache = Cache("other", kOld, true);
  ASSERT_OK_AND_ASSIGN(RefreshPlan plan, PlanRefresh(Parent("cache-old"), {"A", "B", "C"}, kOld, *cache));
  EXPECT_EQ(plan.reused, 0);
  EXPECT_EQ(plan.reembedded, 3);
  EXPECT_EQ(plan.recomputed, 0);
  EXPECT_THAT(plan.parent_row, ElementsAre(-1, -1, -1));
  EXPECT_THAT(plan.cache_row, ElementsAre(0, 1, 2));
}

TEST(RefreshPlanTest, RefusesWhatCannotBeRefreshed) {
  auto cache = Cache("bad", kOld, true);
  ModelVersionManifest sasrec = Parent("cache-bad");
  sasrec.network.model = "sasrec";
  sasrec.network.modalities.clear();
  EXPECT_THAT(PlanRefresh(sasrec, {"A"}, kOld, *cache),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("only iisan")));

  ModelVersionManifest image = Parent("cache-bad");
  image.network.modalities.push_back({"image", 8, {0, 2}, "vit", "x", true, "bb-img"});
  EXPECT_THAT(PlanRefresh(image, {"A"}, kOld, *cache),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("image")));

  ModelVersionManifest old = Parent("cache-bad");
  old.network.modalities[0].backbone_fingerprint.clear();
  EXPECT_THAT(PlanRefresh(old, {"A"}, kOld, *cache),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no config.modalities[0].backbone_fingerprint")));

  auto foreign = Cache("foreign", kOld, true, "bb-2");
  EXPECT_THAT(PlanRefresh(Parent("cache-foreign"), {"A"}, kOld, *foreign),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("spec.refresh.text_cache: its backbone fingerprint 'bb-2'")));

  auto wide = Cache("wide", kOld, true, kBackbone, 8);
  EXPECT_THAT(PlanRefresh(Parent("cache-wide"), {"A"}, kOld, *wide),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs width 4")));

  ModelVersionManifest deep = Parent("cache-bad");
  deep.network.modalities[0].states = {0, 3};
  EXPECT_THAT(PlanRefresh(deep, {"A"}, kOld, *cache),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("state 3")));

  EXPECT_THAT(PlanRefresh(Parent("cache-bad"), {"A"}, {}, *cache),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec.refresh.items_table")));
}

}  // namespace
}  // namespace recsys
