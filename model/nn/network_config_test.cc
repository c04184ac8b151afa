#include "model/nn/network_config.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

NetworkConfig Iisan() {
  NetworkConfig c;
  c.model = "iisan";
  c.num_items = 100;
  c.modalities = {{"text", 256, {0, 2, 4, 6}, "bert", "f1", true},
                  {"image", 128, {0, 3, 6, 9}, "vit", "f2", false}};
  c.standardize_states = true;
  return c;
}

TEST(NetworkConfigTest, RoundTripsThroughJsonKeepingOtherKeys) {
  json j = {{"epochs", 7}};
  NetworkConfigToJson(Iisan(), &j);
  EXPECT_EQ(j["epochs"], 7);
  ASSERT_OK_AND_ASSIGN(NetworkConfig back, NetworkConfigFromJson(j));
  EXPECT_EQ(back.model, "iisan");
  EXPECT_EQ(back.num_items, 100);
  EXPECT_EQ(back.ffn_dim, 256);
  EXPECT_TRUE(back.standardize_states);
  ASSERT_EQ(back.modalities.size(), 2u);
  EXPECT_EQ(back.modalities[1].modality, "image");
  EXPECT_EQ(back.modalities[1].hidden_size, 128);
  EXPECT_EQ(back.modalities[1].states, (std::vector<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(back.modalities[0].cache_fingerprint, "f1");
  EXPECT_TRUE(back.modalities[0].standin);
  EXPECT_EQ(back.modalities[0].backbone_fingerprint, "");
  EXPECT_FALSE(j["modalities"][0].contains("backbone_fingerprint"));
}

TEST(NetworkConfigTest, BackboneFingerprintRoundTrips) {
  NetworkConfig c = Iisan();
  c.modalities[0].backbone_fingerprint = "bb-text";
  json j;
  NetworkConfigToJson(c, &j);
  EXPECT_EQ(j["modalities"][0]["backbone_fingerprint"], "bb-text");
  ASSERT_OK_AND_ASSIGN(NetworkConfig back, NetworkConfigFromJson(j));
  EXPECT_EQ(back.modalities[0].backbone_fingerprint, "bb-text");
  EXPECT_EQ(back.modalities[1].backbone_fingerprint, "");
}

// A reader never guesses: every field the networks need is required.
TEST(NetworkConfigTest, EveryNetworkFieldIsRequired) {
  json full;
  NetworkConfigToJson(Iisan(), &full);
  for (const char* field : {"model", "num_items", "embedding_dim", "max_len", "num_heads",
                            "num_layers", "ffn_dim", "dropout", "bottleneck", "inter_path",
                            "modalities"}) {
    json j = full;
    j.erase(field);
    EXPECT_THAT(NetworkConfigFromJson(j),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)))
        << field;
  }
  json j = full;
  j["num_heads"] = "2";
  EXPECT_THAT(NetworkConfigFromJson(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("config.num_heads")));
  j = full;
  j["modalities"][0].erase("states");
  EXPECT_THAT(NetworkConfigFromJson(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("modalities[0].states")));
}

TEST(NetworkConfigTest, RefusesOutOfRangeValues) {
  NetworkConfig c = Iisan();
  c.num_heads = 3;  // 64 % 3 != 0
  EXPECT_THAT(ValidateNetworkConfig(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("num_heads")));
  c = Iisan();
  c.max_len = 0;
  EXPECT_THAT(ValidateNetworkConfig(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("max_len")));
  c = Iisan();
  c.modalities[1].states.pop_back();  // the inter path needs equal block counts
  EXPECT_THAT(ValidateNetworkConfig(c), StatusIs(absl::StatusCode::kInvalidArgument));
  c.inter_path = false;
  EXPECT_OK(ValidateNetworkConfig(c));
  c = Iisan();
  c.model = "bert4rec";
  EXPECT_THAT(ValidateNetworkConfig(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("config.model")));
  // SASRec needs no modalities.
  c = Iisan();
  c.model = "sasrec";
  c.modalities.clear();
  EXPECT_OK(ValidateNetworkConfig(c));
  json j;
  NetworkConfigToJson(c, &j);
  EXPECT_FALSE(j.contains("modalities"));
  EXPECT_OK(NetworkConfigFromJson(j).status());
}

}  // namespace
}  // namespace recsys
