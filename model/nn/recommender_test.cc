#include "model/nn/recommender.h"


#include "common/status_matchers.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

TEST(RecommenderTest, ParsesKinds) {
  ASSERT_OK_AND_ASSIGN(ModelKind k, ParseModelKind("sasrec"));
  EXPECT_EQ(k, ModelKind::kSasrec);
  EXPECT_EQ(ModelKindName(ModelKind::kPopularity), "popularity");
  EXPECT_THAT(ParseModelKind("bert4rec"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RecommenderTest, BuildsTheNetworksOfAConfig) {
  NetworkConfig c;
  c.model = "iisan";
  c.num_items = 3;
  c.embedding_dim = 16;
  c.max_len = 4;
  c.num_layers = 1;
  c.ffn_dim = 32;
  c.bottleneck = 4;
  c.modalities = {{"text", 8, {0, 2, 4}, "b", "f", true}};
  ASSERT_OK(ValidateNetworkConfig(c));
  Recommender model(RecommenderOptionsFor(c));
  ItemInputs in;
  in.states = {torch::randn({2, 3, 8})};
  torch::Tensor e = model->EmbedItems(in);
  EXPECT_EQ(e.sizes(), torch::IntArrayRef({2, 16}));
  torch::Tensor u = model->EncodeUsers(e.unsqueeze(0), torch::ones({1, 2}, torch::kBool));
  EXPECT_EQ(u.sizes(), torch::IntArrayRef({1, 2, 16}));
  auto names = model->named_parameters();
  EXPECT_TRUE(names.contains("item_encoder.intra_text.blocks.2.up.weight"));
  EXPECT_FALSE(names.contains("item_encoder.intra_text.blocks.3.up.weight"));
  EXPECT_FALSE(names.contains("user_encoder.blocks.1.ln2.weight"));  // one layer
  EXPECT_TRUE(names.contains("user_encoder.blocks.0.ln2.weight"));
}

TEST(RecommenderTest, SasrecUsesIdEmbeddings) {
  RecommenderOptions o;
  o.kind = ModelKind::kSasrec;
  o.num_items = 7;
  o.user_encoder.dim(8);
  Recommender model(o);
  ItemInputs in;
  in.ids = torch::tensor(std::vector<int64_t>{6, 1, 1}, torch::kLong);
  torch::Tensor e = model->EmbedItems(in);
  EXPECT_EQ(e.sizes(), torch::IntArrayRef({3, 8}));
  EXPECT_TRUE(torch::equal(e[1], e[2]));
  EXPECT_EQ(model->named_parameters()["item_embedding.weight"].sizes(),
            torch::IntArrayRef({7, 8}));
}

}  // namespace
}  // namespace recsys
