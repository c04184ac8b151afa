#include "trainer/data/item_state_store.h"

#include <cmath>
#include <cstdlib>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) { return TestTempPath(name); }

// Value of state s, dim d of row r: 100*r + 10*s + d.
std::string WriteCache(const std::string& name, const std::string& modality,
                       const std::vector<std::string>& keys, int states, int hidden,
                       DType dtype) {
  std::vector<float> v(keys.size() * states * hidden);
  for (size_t r = 0; r < keys.size(); ++r)
    for (int s = 0; s < states; ++s)
      for (int d = 0; d < hidden; ++d) v[(r * states + s) * hidden + d] = 100 * r + 10 * s + d;
  HiddenStateCacheInfo info;
  info.modality = modality;
  const std::string path = TempPath(name);
  EXPECT_OK(WriteHiddenStateCache(path, keys, v.data(), states, hidden, dtype, info));
  return path;
}

TEST(ItemStateStoreTest, GathersSelectedStatesByDenseId) {
  const std::string img = WriteCache("img.st", "image", {"b", "a"}, 5, 2, DType::kF16);
  const std::string txt = WriteCache("txt.st", "text", {"a", "b", "c"}, 3, 3, DType::kF32);
  ItemStateStore::Options opt;
  opt.cache_paths = {img, txt};  // text comes first anyway
  ASSERT_OK_AND_ASSIGN(auto store, ItemStateStore::Create(opt, {"a", "b"}));
  ASSERT_EQ(store->num_modalities(), 2);
  EXPECT_EQ(store->modality(0), "text");
  EXPECT_EQ(store->num_blocks(0), 2);  // states 0, 2
  EXPECT_EQ(store->num_blocks(1), 3);  // states 0, 2, 4
  EXPECT_EQ(store->hidden_size(1), 2);
  std::vector<float> out(2 * 3 * 2);
  ASSERT_OK(store->Gather(1, {0, 1}, out.data()));
  // item "a" is row 1 of the image cache.
  EXPECT_FLOAT_EQ(out[0], 100);
  EXPECT_FLOAT_EQ(out[2], 120);
  EXPECT_FLOAT_EQ(out[5], 141);
  EXPECT_FLOAT_EQ(out[6], 0);   // item "b" is row 0
  EXPECT_FLOAT_EQ(out[11], 41);
  EXPECT_THAT(store->Gather(0, {2}, out.data()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ItemStateStoreTest, StandardizesOverTheCatalog) {
  // Rows r = 0..3: value 100*r + 10*s + d, so each (state, dim) has mean
  // 150 + 10*s + d and standard deviation 100*sqrt(1.25) over the catalog.
  const std::string txt = WriteCache("std.st", "text", {"a", "b", "c", "d"}, 3, 2, DType::kF32);
  ItemStateStore::Options opt;
  opt.cache_paths = {txt};
  opt.standardize = true;
  ASSERT_OK_AND_ASSIGN(auto store, ItemStateStore::Create(opt, {"a", "b", "c", "d"}));
  ASSERT_EQ(store->mean(0).size(), 2u * 2u);  // states 0 and 2, 2 dims
  EXPECT_FLOAT_EQ(store->mean(0)[3], 150 + 20 + 1);
  const double sd = 100 * std::sqrt(1.25);
  std::vector<float> out(4 * 2 * 2);
  ASSERT_OK(store->Gather(0, {0, 1, 2, 3}, out.data()));
  for (int x = 0; x < 4; ++x) {  // every (state, dim) column: mean 0, std 1
    double sum = 0, sum_sq = 0;
    for (int r = 0; r < 4; ++r) {
      sum += out[r * 4 + x];
      sum_sq += out[r * 4 + x] * out[r * 4 + x];
    }
    EXPECT_NEAR(sum / 4, 0, 1e-5);
    EXPECT_NEAR(sum_sq / 4, 1, 1e-4);
  }
  EXPECT_NEAR(out[0], (0 - 150) / sd, 1e-5);

  // A dimension constant over the catalog carries nothing and becomes 0.
  const std::string same = WriteCache("same.st", "text", {"a"}, 3, 2, DType::kF32);
  opt.cache_paths = {same};
  ASSERT_OK_AND_ASSIGN(auto flat, ItemStateStore::Create(opt, {"a"}));
  ASSERT_OK(flat->Gather(0, {0}, out.data()));
  for (int x = 0; x < 4; ++x) EXPECT_EQ(out[x], 0.0f);
}

TEST(ItemStateStoreTest, MissingItems) {
  const std::string txt = WriteCache("t2.st", "text", {"a"}, 3, 2, DType::kF32);
  ItemStateStore::Options opt;
  opt.cache_paths = {txt};
  EXPECT_THAT(ItemStateStore::Create(opt, {"a", "zz"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("zz")));
  opt.allow_missing_items = true;
  ASSERT_OK_AND_ASSIGN(auto store, ItemStateStore::Create(opt, {"a", "zz"}));
  std::vector<float> out(4, -1);
  ASSERT_OK(store->Gather(0, {1}, out.data()));
  EXPECT_FLOAT_EQ(out[3], 0);
}

}  // namespace
}  // namespace recsys
