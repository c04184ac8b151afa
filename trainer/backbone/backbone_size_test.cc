#include "trainer/backbone/backbone_size.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;

TEST(JobBertConfigTest, ParsesLayersAndWidth) {
  absl::StatusOr<BertConfig> c = JobBertConfig("f", "2x32");
  ASSERT_THAT(c.status(), IsOk());
  EXPECT_EQ(c->num_hidden_layers, 2);
  EXPECT_EQ(c->hidden_size, 32);
  EXPECT_EQ(c->num_attention_heads, 4);
  EXPECT_EQ(c->intermediate_size, 128);
  absl::StatusOr<BertConfig> d = JobBertConfig("f", "");
  ASSERT_THAT(d.status(), IsOk());
  EXPECT_EQ(d->num_hidden_layers, 6);
  EXPECT_EQ(d->hidden_size, 256);
}

TEST(JobBertConfigTest, RefusesNamingTheField) {
  for (const char* bad : {"2x30", "x32", "2x", "0x32", "2x32x1", "big"}) {
    EXPECT_THAT(JobBertConfig("spec.build_cache.backbone", bad).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("spec.build_cache.backbone: expected LAYERSxHIDDEN")))
        << bad;
  }
}

// "1000x100000" parsed, and the job worker allocated until the machine ran
// out of memory.
TEST(JobBertConfigTest, RefusesStandInsTooLargeToBuild) {
  for (const char* bad : {"1000x100000", "6x100000", "100000x256", "49x64", "24x2048",
                          "1x2147483644"}) {
    EXPECT_THAT(JobBertConfig("spec.build_cache.backbone", bad).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("spec.build_cache.backbone: a stand-in of at most 48 layers")))
        << bad;
  }
  EXPECT_THAT(JobBertConfig("f", "24x1024").status(), IsOk());  // BERT-large's shape
  EXPECT_THAT(JobBertConfig("f", "48x64").status(), IsOk());
}

TEST(JobViTConfigTest, RefusesStandInsTooLargeToBuild) {
  EXPECT_THAT(JobViTConfig("f", "1000x192").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 48 layers")));
  for (const char* bad : {"4x192@100000/1", "4x192@1024/8", "4x192@8192/1024"}) {
    EXPECT_THAT(JobViTConfig("f", bad).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("patches")))
        << bad;
  }
  EXPECT_THAT(JobViTConfig("f", "24x1024@336/14").status(), IsOk());  // ViT-L/14 at 336
}

TEST(JobViTConfigTest, DefaultIsTheBuildCacheCommandsStandIn) {
  absl::StatusOr<ViTConfig> c = JobViTConfig("f", "");
  ASSERT_THAT(c.status(), IsOk());
  EXPECT_EQ(c->num_hidden_layers, 4);
  EXPECT_EQ(c->hidden_size, 192);
  EXPECT_EQ(c->num_attention_heads, 3);
  EXPECT_EQ(c->intermediate_size, 768);
  EXPECT_EQ(c->image_size, 224);
  EXPECT_EQ(c->patch_size, 16);
  EXPECT_THAT(c->Validate(), IsOk());
}

TEST(JobViTConfigTest, ParsesImageAndPatch) {
  absl::StatusOr<ViTConfig> c = JobViTConfig("f", "2x64@32/8");
  ASSERT_THAT(c.status(), IsOk());
  EXPECT_EQ(c->num_hidden_layers, 2);
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->num_attention_heads, 1);
  EXPECT_EQ(c->image_size, 32);
  EXPECT_EQ(c->patch_size, 8);
  EXPECT_THAT(c->Validate(), IsOk());
}

TEST(JobViTConfigTest, RefusesNamingTheField) {
  for (const char* bad : {"2x32", "2x64@30/8", "2x64@32", "2x64@32/0", "2x64@", "4x192x1"}) {
    EXPECT_THAT(JobViTConfig("spec.build_cache.backbone", bad).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("spec.build_cache.backbone: expected LAYERSxHIDDEN[@IMAGE/PATCH]")))
        << bad;
  }
}

TEST(CacheViTConfigTest, ReadsTheRecordedConfigAndRefusesOtherBackbones) {
  absl::StatusOr<ViTConfig> want = JobViTConfig("f", "2x64@32/8");
  ASSERT_THAT(want.status(), IsOk());
  HiddenStateCacheInfo info;
  info.backbone = "vit-standin-2x64-p8-32";
  info.backbone_config = want->ToJson();
  absl::StatusOr<ViTConfig> got = CacheViTConfig("spec.refresh.image_cache", info);
  ASSERT_THAT(got.status(), IsOk());
  EXPECT_EQ(got->num_hidden_layers, 2);
  EXPECT_EQ(got->hidden_size, 64);
  EXPECT_EQ(got->image_size, 32);
  EXPECT_EQ(got->patch_size, 8);
  info.backbone_config = "{not json";
  EXPECT_THAT(CacheViTConfig("spec.refresh.image_cache", info).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("spec.refresh.image_cache: its backbone_config")));
  info.backbone = "synthetic-demo";
  EXPECT_THAT(CacheViTConfig("spec.refresh.image_cache", info).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("synthetic")));
  info.backbone = "torchscript-image";
  EXPECT_THAT(CacheViTConfig("spec.refresh.image_cache", info).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is not a ViT")));
}

}  // namespace
}  // namespace recsys
