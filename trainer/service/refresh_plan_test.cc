#include "trainer/service/refresh_plan.h"

#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/status_macros.h"
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

// PlanRefresh over a text-only version's one side.
absl::StatusOr<RefreshPlan> Plan(const ModelVersionManifest& parent,
                                 const std::vector<std::string>& parent_keys,
                                 const std::vector<ItemTableRow>& catalog,
                                 const HiddenStateCache& cache) {
  ASSIGN_OR_RETURN(std::vector<RefreshSideInput> sides,
                   RefreshSidesFor(parent, catalog, &cache, nullptr, ""));
  std::vector<std::string> keys;
  for (const ItemTableRow& r : catalog) keys.push_back(r.key);
  return PlanRefresh(parent, parent_keys, keys, std::move(sides));
}

TEST(RefreshPlanTest, ReusesUnchangedEncodesNewAndChangedDropsRemoved) {
  auto cache = Cache("old", kOld, true);
  // B's title changed, C removed, D new.
  const std::vector<ItemTableRow> now = {{"D", "green sensor"}, {"A", "red flask"}, {"B", "blue flask v2"}};
  ASSERT_OK_AND_ASSIGN(RefreshPlan plan, Plan(Parent("cache-old"), {"A", "B", "C"}, now, *cache));
  EXPECT_THAT(plan.keys, ElementsAre("D", "A", "B"));
  ASSERT_EQ(plan.sides.size(), 1u);
  EXPECT_THAT(plan.sides[0].cache_row, ElementsAre(-1, 0, -1));
  EXPECT_EQ(plan.sides[0].encoded, 2);
  EXPECT_THAT(plan.parent_row, ElementsAre(-1, 0, -1));
  EXPECT_EQ(plan.sides[0].content_fingerprints[2], ItemContentFingerprint("blue flask v2"));
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
  ASSERT_OK_AND_ASSIGN(RefreshPlan plan, Plan(Parent("cache-nofp"), {"A", "B", "C"}, kOld, *cache));
  EXPECT_EQ(plan.recomputed, 3);
  EXPECT_EQ(plan.unknown, 3);
  EXPECT_EQ(plan.reused, 0);
  EXPECT_THAT(plan.sides[0].cache_row, ElementsAre(-1, -1, -1));
}

TEST(RefreshPlanTest, StatesOfAnotherCacheAreReusedButReembedded) {
  // Same backbone and contents, but not the cache the parent was made from:
  // the embeddings are made again rather than copied.
  auto cache = Cache("other", kOld, true);
  ASSERT_OK_AND_ASSIGN(RefreshPlan plan, Plan(Parent("cache-old"), {"A", "B", "C"}, kOld, *cache));
  EXPECT_EQ(plan.reused, 0);
  EXPECT_EQ(plan.reembedded, 3);
  EXPECT_EQ(plan.recomputed, 0);
  EXPECT_THAT(plan.parent_row, ElementsAre(-1, -1, -1));
  EXPECT_THAT(plan.sides[0].cache_row, ElementsAre(0, 1, 2));
}

TEST(RefreshPlanTest, RefusesWhatCannotBeRefreshed) {
  auto cache = Cache("bad", kOld, true);
  ModelVersionManifest sasrec = Parent("cache-bad");
  sasrec.network.model = "sasrec";
  sasrec.network.modalities.clear();
  EXPECT_THAT(Plan(sasrec, {"A"}, kOld, *cache),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("only iisan")));

  ModelVersionManifest image = Parent("cache-bad");
  image.network.modalities.push_back({"image", 8, {0, 2}, "vit", "x", true, "bb-img"});
  EXPECT_THAT(Plan(image, {"A"}, kOld, *cache),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("spec.refresh.image_cache: a file path is required")));
  EXPECT_THAT(RefreshSidesFor(Parent("cache-bad"), kOld, cache.get(), cache.get(), ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("spec.refresh.image_cache: must be empty")));
  EXPECT_THAT(RefreshSidesFor(Parent("cache-bad"), kOld, nullptr, nullptr, ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("spec.refresh.text_cache: a file path is required")));

  ModelVersionManifest old = Parent("cache-bad");
  old.network.modalities[0].backbone_fingerprint.clear();
  EXPECT_THAT(Plan(old, {"A"}, kOld, *cache),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no config.modalities[0].backbone_fingerprint")));

  auto foreign = Cache("foreign", kOld, true, "bb-2");
  EXPECT_THAT(Plan(Parent("cache-foreign"), {"A"}, kOld, *foreign),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("spec.refresh.text_cache: its backbone fingerprint 'bb-2'")));

  auto wide = Cache("wide", kOld, true, kBackbone, 8);
  EXPECT_THAT(Plan(Parent("cache-wide"), {"A"}, kOld, *wide),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs width 4")));

  ModelVersionManifest deep = Parent("cache-bad");
  deep.network.modalities[0].states = {0, 3};
  EXPECT_THAT(Plan(deep, {"A"}, kOld, *cache),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("state 3")));

  EXPECT_THAT(Plan(Parent("cache-bad"), {"A"}, {}, *cache),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec.refresh.items_table")));
}

// Both sides: an item is copied only when neither its title nor its image
// changed; the image's content is its file's bytes.
TEST(RefreshPlanTest, ImageSideFingerprintsTheFiles) {
  const std::string dir = TestTempPath("plan_images");
  ASSERT_OK(RemoveRecursively(dir));
  ASSERT_OK(CreateDirectories(dir));
  std::string table;
  std::vector<ItemTableRow> image_rows;
  for (const char* k : {"A", "B", "C"}) {
    ASSERT_OK(WriteFileAtomically(JoinPath(dir, std::string(k) + ".png"), std::string("png of ") + k));
    table += std::string(k) + "\t" + k + ".png\n";
    image_rows.push_back({k, std::string("png of ") + k});  // the bytes: what the cache saw
  }
  ASSERT_OK(WriteFileAtomically(JoinPath(dir, "images.tsv"), table));
  auto text = Cache("both_text", kOld, true);
  std::unique_ptr<HiddenStateCache> image;
  {
    std::vector<float> states(3 * 3 * 8, 0.5f);
    HiddenStateCacheInfo info;
    info.modality = "image";
    info.backbone = "vit-standin";
    info.fingerprint = "cache-both_image";
    info.backbone_fingerprint = "bb-img";
    std::vector<uint64_t> fps;
    for (const ItemTableRow& r : image_rows) fps.push_back(ItemContentFingerprint(r.value));
    ASSERT_OK(WriteHiddenStateCache(JoinPath(dir, "image.st"), {"A", "B", "C"}, states.data(), 3, 8,
                                    DType::kF16, info, fps));
    ASSERT_OK_AND_ASSIGN(image, HiddenStateCache::Open(JoinPath(dir, "image.st")));
  }
  ModelVersionManifest parent = Parent("cache-both_text");
  parent.network.modalities.push_back({"image", 8, {0, 2}, "vit-standin", "cache-both_image", true, "bb-img"});
  // B's image file changes (same path), C's title changes.
  ASSERT_OK(WriteFileAtomically(JoinPath(dir, "B.png"), "another png"));
  std::vector<ItemTableRow> now = kOld;
  now[2].value = "gold scale v2";
  ASSERT_OK_AND_ASSIGN(std::vector<RefreshSideInput> sides,
                       RefreshSidesFor(parent, now, text.get(), image.get(), JoinPath(dir, "images.tsv")));
  ASSERT_OK_AND_ASSIGN(RefreshPlan plan, PlanRefresh(parent, {"A", "B", "C"}, {"A", "B", "C"}, std::move(sides)));
  EXPECT_THAT(plan.parent_row, ElementsAre(0, -1, -1));
  EXPECT_THAT(plan.sides[0].cache_row, ElementsAre(0, 1, -1));
  EXPECT_THAT(plan.sides[1].cache_row, ElementsAre(0, -1, 2));
  EXPECT_EQ(plan.sides[1].values[1], JoinPath(dir, "B.png"));
  EXPECT_EQ(plan.reused, 1);
  EXPECT_EQ(plan.recomputed, 2);
  EXPECT_EQ(plan.changed, 2);

  // An item without an image, and an image that is not there.
  now.push_back({"D", "new"});
  EXPECT_THAT(RefreshSidesFor(parent, now, text.get(), image.get(), JoinPath(dir, "images.tsv")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no image for 1 of the catalog's 4 items, e.g. 'D'")));
  ASSERT_OK(WriteFileAtomically(JoinPath(dir, "images.tsv"), table + "D\tmissing.png\n"));
  EXPECT_THAT(RefreshSidesFor(parent, now, text.get(), image.get(), JoinPath(dir, "images.tsv")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("the image of 'D'")));
}

}  // namespace
}  // namespace recsys
