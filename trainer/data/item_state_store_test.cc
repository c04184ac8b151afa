#include "trainer/data/item_state_store.h"

#include <cmath>
#include <algorithm>
#include <cstdlib>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::AllOf;
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

std::string WriteValues(const std::string& name, const std::vector<std::string>& keys,
                        int states, int hidden, DType dtype, const std::vector<float>& v) {
  HiddenStateCacheInfo info;
  info.modality = "text";
  const std::string path = TempPath(name);
  EXPECT_OK(WriteHiddenStateCache(path, keys, v.data(), states, hidden, dtype, info));
  return path;
}

// Distinct, finite states for `n` items: [n, states, hidden].
std::vector<float> Distinct(int n, int states, int hidden) {
  std::vector<float> v(static_cast<size_t>(n) * states * hidden);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 37) % 101) / 10.0f;
  return v;
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

// The dense copy serves exactly what the mapped path serves (F16 caches,
// standardized, missing items as zeros), in dense-id order; over the byte
// budget there is none.
TEST(ItemStateStoreTest, DenseStatesEqualTheMappedPath) {
  const std::string txt = WriteCache("dense.st", "text", {"c", "a", "b"}, 5, 3, DType::kF16);
  ItemStateStore::Options opt;
  opt.cache_paths = {txt};
  opt.standardize = true;
  opt.allow_missing_items = true;
  opt.max_missing_fraction = 0.5;
  const std::vector<std::string> items = {"a", "b", "zz", "c"};
  opt.dense_max_bytes = 0;
  ASSERT_OK_AND_ASSIGN(auto mapped, ItemStateStore::Create(opt, items));
  EXPECT_EQ(mapped->dense_states(0), nullptr);
  opt.dense_max_bytes = int64_t{1} << 20;
  ASSERT_OK_AND_ASSIGN(auto dense, ItemStateStore::Create(opt, items));
  ASSERT_NE(dense->dense_states(0), nullptr);
  EXPECT_EQ(dense->info(0).modality, "text");  // kept after the cache is unmapped
  EXPECT_EQ(dense->hidden_size(0), 3);
  const int64_t width = 3 * 3;  // states 0, 2, 4 of width 3
  std::vector<float> a(4 * width), b(4 * width);
  ASSERT_OK(mapped->Gather(0, {0, 1, 2, 3}, a.data()));
  ASSERT_OK(dense->Gather(0, {3, 0, 2, 1}, b.data()));
  const float* table = dense->dense_states(0);
  const int64_t order[] = {3, 0, 2, 1};
  for (int r = 0; r < 4; ++r) {
    for (int64_t x = 0; x < width; ++x) {
      EXPECT_EQ(b[r * width + x], a[order[r] * width + x]) << r << " " << x;
      EXPECT_EQ(table[order[r] * width + x], a[order[r] * width + x]);
    }
  }
  for (int64_t x = 0; x < width; ++x) EXPECT_EQ(table[2 * width + x], 0.0f);  // "zz"
  EXPECT_NE(a[0], a[width]);  // the rows differ: the comparison means something
  std::vector<float> out(width);
  EXPECT_THAT(dense->Gather(0, {4}, out.data()), StatusIs(absl::StatusCode::kInvalidArgument));
  // One byte short of the table: no dense copy.
  opt.dense_max_bytes = 4 * width * static_cast<int64_t>(sizeof(float)) - 1;
  ASSERT_OK_AND_ASSIGN(auto tight, ItemStateStore::Create(opt, items));
  EXPECT_EQ(tight->dense_states(0), nullptr);
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

TEST(ItemStateStoreGarbageTest, NonFiniteStatesAreRefusedWithTheirPlace) {
  const std::vector<std::string> keys = {"a", "b", "c", "d"};
  std::vector<float> v = Distinct(4, 3, 2);
  v[(1 * 3 + 2) * 2 + 1] = std::nanf("");  // item "b", state 2, dim 1
  v[(3 * 3 + 0) * 2 + 0] = std::nanf("");  // item "d", state 0, dim 0
  const std::string path = WriteValues("nan.st", keys, 3, 2, DType::kF32, v);
  ItemStateStore::Options opt;
  opt.cache_paths = {path};
  // Standardizing would spread the NaN over every item (mean and std of the
  // dimension become NaN); without it the NaN item trains to NaN.
  for (bool standardize : {false, true}) {
    opt.standardize = standardize;
    EXPECT_THAT(ItemStateStore::Create(opt, keys),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(path), HasSubstr("item \"b\""), HasSubstr("state 2 dim 1"),
                               HasSubstr("2 non-finite values in 2 of the 4"))));
  }
  // A state the blocks do not use (state 1 with every_second) is not read.
  std::vector<float> unused = Distinct(4, 3, 2);
  unused[(0 * 3 + 1) * 2] = std::nanf("");
  opt.cache_paths = {WriteValues("unused_nan.st", keys, 3, 2, DType::kF32, unused)};
  EXPECT_OK(ItemStateStore::Create(opt, keys).status());
  // F16 overflow stores Inf.
  std::vector<float> big = Distinct(4, 3, 2);
  big[5] = 1e6f;
  opt.cache_paths = {WriteValues("inf.st", keys, 3, 2, DType::kF16, big)};
  EXPECT_THAT(ItemStateStore::Create(opt, keys),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("item \"a\""), HasSubstr("is inf"))));
}

TEST(ItemStateStoreGarbageTest, ConstantStatesAreRefused) {
  const std::vector<std::string> keys = {"a", "b", "c"};
  std::vector<float> v(3 * 3 * 2, 0.25f);
  ItemStateStore::Options opt;
  opt.cache_paths = {WriteValues("const.st", keys, 3, 2, DType::kF16, v)};
  EXPECT_THAT(ItemStateStore::Create(opt, keys),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("const.st"), HasSubstr("same for all 3"))));
  std::fill(v.begin(), v.end(), 0.0f);  // an all-zero cache too
  opt.cache_paths = {WriteValues("zeros.st", keys, 3, 2, DType::kF16, v)};
  EXPECT_THAT(ItemStateStore::Create(opt, keys),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("same for all 3")));
  // One state constant over the catalog (a real BERT's embedding-layer CLS
  // state is) is fine while another state varies.
  for (int r = 0; r < 3; ++r) v[(r * 3 + 2) * 2] = static_cast<float>(r);
  opt.cache_paths = {WriteValues("one_state.st", keys, 3, 2, DType::kF16, v)};
  EXPECT_OK(ItemStateStore::Create(opt, keys).status());
}

TEST(ItemStateStoreGarbageTest, MostlyDuplicatedStatesAreRefused) {
  const std::vector<std::string> keys = {"a", "b", "c", "d", "e"};
  std::vector<float> v = Distinct(5, 3, 2);
  const size_t row = 3 * 2;
  // b = a: two items alike is a warning, not an error.
  std::copy(v.begin(), v.begin() + row, v.begin() + row);
  ItemStateStore::Options opt;
  opt.cache_paths = {WriteValues("dup1.st", keys, 3, 2, DType::kF32, v)};
  EXPECT_OK(ItemStateStore::Create(opt, keys).status());
  // c = d = b = a: four of five items alike, 2 distinct state sets.
  std::copy(v.begin(), v.begin() + row, v.begin() + 2 * row);
  std::copy(v.begin(), v.begin() + row, v.begin() + 3 * row);
  opt.cache_paths = {WriteValues("dup3.st", keys, 3, 2, DType::kF32, v)};
  EXPECT_THAT(ItemStateStore::Create(opt, keys),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("dup3.st"), HasSubstr("4 of the 5 catalog items share"),
                             HasSubstr("2 distinct"), HasSubstr("degenerate"))));
}

TEST(ItemStateStoreGarbageTest, MostItemsMissingIsRefusedEvenWhenAllowed) {
  const std::string path = WriteValues("few.st", {"a", "b"}, 3, 2, DType::kF32, Distinct(2, 3, 2));
  ItemStateStore::Options opt;
  opt.cache_paths = {path};
  opt.allow_missing_items = true;
  // 3 of 5 missing: most items would get the same all-zero states.
  EXPECT_THAT(ItemStateStore::Create(opt, {"a", "b", "x", "y", "z"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path), HasSubstr("3 of the 5 catalog items"),
                             HasSubstr("\"x\", \"y\", \"z\""))));
  // None present at all.
  EXPECT_THAT(ItemStateStore::Create(opt, {"x", "y"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("2 of the 2")));
  // 1 of 3 missing: allowed (a warning).
  EXPECT_OK(ItemStateStore::Create(opt, {"a", "b", "x"}).status());
}

}  // namespace
}  // namespace recsys
