#include "model/hidden_state_cache.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) { return TestTempPath(name); }

HiddenStateCacheInfo TextInfo() {
  HiddenStateCacheInfo info;
  info.modality = "text";
  info.backbone = "bert-standin-2x4";
  info.backbone_config = "{\"layers\":2}";
  info.fingerprint = "abc123";
  info.standin = true;
  info.extra["note"] = "test";
  return info;
}

TEST(HiddenStateCacheTest, RoundTripsF32AndF16) {
  const std::vector<std::string> keys = {"B001", "B002", "B003"};
  std::vector<float> states(3 * 3 * 4);
  for (size_t i = 0; i < states.size(); ++i) states[i] = 0.25f * i - 2.0f;
  for (DType dtype : {DType::kF32, DType::kF16}) {
    const std::string path = TempPath(std::string("c_") +
                                      std::string(DTypeName(dtype)) + ".st");
    ASSERT_OK(WriteHiddenStateCache(path, keys, states.data(), 3, 4, dtype,
                                    TextInfo()));
    ASSERT_OK_AND_ASSIGN(auto cache, HiddenStateCache::Open(path));
    EXPECT_EQ(cache->num_items(), 3);
    EXPECT_EQ(cache->num_states(), 3);
    EXPECT_EQ(cache->hidden_size(), 4);
    EXPECT_EQ(cache->dtype(), dtype);
    EXPECT_EQ(cache->keys(), keys);
    EXPECT_EQ(cache->RowOf("B003"), 2);
    EXPECT_EQ(cache->RowOf("nope"), -1);
    EXPECT_EQ(cache->info().modality, "text");
    EXPECT_TRUE(cache->info().standin);
    EXPECT_EQ(cache->info().extra.at("note"), "test");
    std::vector<float> out(2 * 12);
    ASSERT_OK(cache->Gather({2, 0}, out.data()));
    for (int j = 0; j < 12; ++j) {
      EXPECT_FLOAT_EQ(out[j], states[24 + j]);  // exact in F16 too
      EXPECT_FLOAT_EQ(out[12 + j], states[j]);
    }
    EXPECT_THAT(cache->Gather({3}, out.data()),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

TEST(HiddenStateCacheTest, RejectsBadInput) {
  std::vector<float> states(2 * 2 * 2, 1.0f);
  EXPECT_THAT(WriteHiddenStateCache(TempPath("dup.st"), {"a", "a"},
                                    states.data(), 2, 2, DType::kF32,
                                    TextInfo()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate")));
  EXPECT_THAT(WriteHiddenStateCache(TempPath("empty.st"), {"a", ""},
                                    states.data(), 2, 2, DType::kF32,
                                    TextInfo()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // A plain safetensors file without the format tag is refused.
  SafetensorsWriter w;
  ASSERT_OK(w.AddTensor("x", DType::kF32, {1}, std::string(4, '\0')));
  ASSERT_OK(w.WriteFile(TempPath("plain.st")));
  EXPECT_THAT(HiddenStateCache::Open(TempPath("plain.st")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("format")));
}

TEST(HiddenStateCacheTest, ContentFingerprintsRoundTripAndOldCachesHaveNone) {
  const std::vector<std::string> keys = {"B001", "B002"};
  std::vector<float> states(2 * 2 * 2, 0.5f);
  const std::vector<uint64_t> fps = {ItemContentFingerprint("red pipette"),
                                     ItemContentFingerprint("blue pipette")};
  HiddenStateCacheInfo info = TextInfo();
  info.backbone_fingerprint = "bb42";
  ASSERT_OK(WriteHiddenStateCache(TempPath("fp.st"), keys, states.data(), 2, 2, DType::kF16,
                                  info, fps));
  ASSERT_OK_AND_ASSIGN(auto cache, HiddenStateCache::Open(TempPath("fp.st")));
  ASSERT_TRUE(cache->has_content_fingerprints());
  EXPECT_EQ(cache->ContentFingerprint(0), fps[0]);
  EXPECT_EQ(cache->ContentFingerprint(1), fps[1]);
  EXPECT_EQ(cache->ContentFingerprint(2), std::nullopt);
  EXPECT_EQ(cache->info().backbone_fingerprint, "bb42");
  EXPECT_EQ(cache->info().extra.count("backbone_fingerprint"), 0u);

  // Written without them (as every cache before them): unknown, not zero.
  ASSERT_OK(WriteHiddenStateCache(TempPath("nofp.st"), keys, states.data(), 2, 2, DType::kF16,
                                  TextInfo()));
  ASSERT_OK_AND_ASSIGN(auto old, HiddenStateCache::Open(TempPath("nofp.st")));
  EXPECT_FALSE(old->has_content_fingerprints());
  EXPECT_EQ(old->ContentFingerprint(0), std::nullopt);
  EXPECT_EQ(old->info().backbone_fingerprint, "");

  EXPECT_THAT(WriteHiddenStateCache(TempPath("badfp.st"), keys, states.data(), 2, 2,
                                    DType::kF16, info, {fps[0]}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("content fingerprints")));
}

TEST(HiddenStateCacheTest, ContentFingerprintSeesEveryByte) {
  const uint64_t a = ItemContentFingerprint("Steel caliper #12");
  EXPECT_EQ(a, ItemContentFingerprint(std::string("Steel caliper #12")));
  EXPECT_NE(a, ItemContentFingerprint("Steel caliper #13"));
  EXPECT_NE(a, ItemContentFingerprint("steel caliper #12"));
  EXPECT_NE(a, ItemContentFingerprint("Steel caliper #12 "));
  EXPECT_NE(ItemContentFingerprint(""), ItemContentFingerprint(std::string(1, '\0')));
}

}  // namespace
}  // namespace recsys
