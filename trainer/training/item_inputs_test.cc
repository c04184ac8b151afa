#include "trainer/training/item_inputs.h"

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

TEST(ItemInputsTest, IisanOverGatheredStates) {
  const std::string path = TestTempPath("t.st");
  std::vector<float> v(3 * 5 * 8);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.5f + 0.01f * (i % 7);  // items differ
  HiddenStateCacheInfo info;
  info.modality = "text";
  ASSERT_OK(WriteHiddenStateCache(path, {"a", "b", "c"}, v.data(), 5, 8, DType::kF16, info));
  ItemStateStore::Options so;
  so.cache_paths = {path};
  ASSERT_OK_AND_ASSIGN(auto store, ItemStateStore::Create(so, {"a", "b", "c"}));

  RecommenderOptions o;
  o.item_encoder = ItemEncoderOptionsFor(*store, 4, 16, true);
  o.user_encoder.dim(16).max_len(4);
  Recommender model(o);
  ASSERT_OK_AND_ASSIGN(ItemInputs in, GatherItemInputs(store.get(), {2, 0}, torch::kCPU));
  ASSERT_EQ(in.states.size(), 1u);
  EXPECT_EQ(in.states[0].sizes(), torch::IntArrayRef({2, 3, 8}));
  torch::Tensor e = model->EmbedItems(in);
  EXPECT_EQ(e.sizes(), torch::IntArrayRef({2, 16}));
  torch::Tensor u = model->EncodeUsers(e.unsqueeze(0), torch::ones({1, 2}, torch::kBool));
  EXPECT_EQ(u.sizes(), torch::IntArrayRef({1, 2, 16}));
  auto names = model->named_parameters();
  EXPECT_TRUE(names.contains("item_encoder.intra_text.blocks.2.up.weight"));
  EXPECT_TRUE(names.contains("user_encoder.blocks.1.ln2.weight"));
  EXPECT_FALSE(model->ItemTowerParameters().empty());
}

TEST(ItemInputsTest, ModalityConfigsDescribeTheStore) {
  const std::string path = TestTempPath("m.st");
  std::vector<float> v(2 * 5 * 4);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.25f + 0.01f * i;  // items differ
  HiddenStateCacheInfo info;
  info.modality = "text";
  info.backbone = "bert-standin";
  info.fingerprint = "abc";
  ASSERT_OK(WriteHiddenStateCache(path, {"a", "b"}, v.data(), 5, 4, DType::kF32, info));
  ItemStateStore::Options so;
  so.cache_paths = {path};
  ASSERT_OK_AND_ASSIGN(auto store, ItemStateStore::Create(so, {"a", "b"}));
  std::vector<ModalityConfig> m = ModalityConfigsFor(*store);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].modality, "text");
  EXPECT_EQ(m[0].hidden_size, 4);
  EXPECT_EQ(m[0].states, (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(m[0].backbone, "bert-standin");
  EXPECT_EQ(m[0].cache_fingerprint, "abc");
}

}  // namespace
}  // namespace recsys
