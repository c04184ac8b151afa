#include "retrieval/collection_config.h"

#include <cmath>
#include <limits>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace retrieval {
namespace {

using ::testing::HasSubstr;

CollectionConfig Config(int d = 4, Metric m = Metric::kInnerProduct) {
  CollectionConfig c;
  c.name = "items";
  c.dimension = d;
  c.metric = m;
  c.index_factory = "Flat";
  return c;
}

TEST(ValidateConfigTest, AcceptsCommonFactories) {
  for (const char* f : {"Flat", "HNSW32", "IVF16,Flat", "IVF16,PQ2"}) {
    CollectionConfig c = Config(8);
    c.index_factory = f;
    EXPECT_OK(ValidateConfig(c)) << f;
  }
}

TEST(ValidateConfigTest, NamesTheBadField) {
  CollectionConfig c = Config();
  c.name = "bad name/";
  EXPECT_THAT(ValidateConfig(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("config.name")));
  c = Config(0);
  EXPECT_THAT(ValidateConfig(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("config.dimension")));
  c = Config();
  c.index_factory = "NoSuchIndex42";
  EXPECT_THAT(ValidateConfig(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("config.index_factory")));
  c = Config();
  c.index_factory = "IDMap,Flat";
  EXPECT_THAT(ValidateConfig(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("IDMap")));
  c = Config();
  c.build_params["efConstruction"] = "lots";
  EXPECT_THAT(ValidateConfig(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("efConstruction")));
  c = Config();
  c.build_params["hnsw_walk"] = "fp8";
  EXPECT_THAT(ValidateConfig(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("hnsw_walk")));
  for (const char* walk : {"int8", "fp16", "fp32"}) {
    c.build_params["hnsw_walk"] = walk;
    EXPECT_OK(ValidateConfig(c)) << walk;
  }
}

TEST(ValidateBatchTest, RejectsBadEntriesNamingThem) {
  EntryLimits limits;
  const CollectionConfig c = Config();
  auto ok_entry = [](std::string key) {
    return Entry{std::move(key), {1, 0, 0, 0}, {}};
  };
  std::vector<Entry> wrong_dim = {ok_entry("a"), Entry{"b", {1, 2}, {}}};
  EXPECT_THAT(ValidateBatch(c, limits, wrong_dim),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("entries[1].vector: expected dimension 4")));
  std::vector<Entry> nan = {
      Entry{"a", {1, std::numeric_limits<float>::quiet_NaN(), 0, 0}, {}}};
  EXPECT_THAT(ValidateBatch(c, limits, nan),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("entries[0].vector[1]: expected a finite")));
  std::vector<Entry> inf = {
      Entry{"a", {1, 0, 0, std::numeric_limits<float>::infinity()}, {}}};
  EXPECT_THAT(ValidateBatch(c, limits, inf),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<Entry> empty_key = {ok_entry("")};
  EXPECT_THAT(ValidateBatch(c, limits, empty_key),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("entries[0].key")));
  std::vector<Entry> dup = {ok_entry("a"), ok_entry("b"), ok_entry("a")};
  EXPECT_THAT(ValidateBatch(c, limits, dup),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("entries[2].key: duplicate key 'a'")));
  limits.max_payload_bytes = 8;
  std::vector<Entry> big = {
      Entry{"a", {1, 0, 0, 0}, {{"title", "a very long title"}}}};
  EXPECT_THAT(ValidateBatch(c, limits, big),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("entries[0].payload: expected at most 8")));
}

TEST(ValidateBatchTest, NormalisesCosineVectorsAndSortsPayloads) {
  const CollectionConfig c = Config(2, Metric::kCosine);
  std::vector<Entry> batch = {
      Entry{"a", {3, 4}, {{"z", "1"}, {"a", "2"}, {"z", "3"}}}};
  ASSERT_OK(ValidateBatch(c, EntryLimits(), batch));
  EXPECT_FLOAT_EQ(batch[0].vector[0], 0.6f);
  EXPECT_FLOAT_EQ(batch[0].vector[1], 0.8f);
  ASSERT_EQ(batch[0].payload.size(), 2u);
  EXPECT_EQ(batch[0].payload[0].first, "a");
  EXPECT_EQ(*FindField(batch[0].payload, "z"), "3");
  EXPECT_EQ(FindField(batch[0].payload, "q"), nullptr);
  std::vector<Entry> zero = {Entry{"a", {0, 0}, {}}};
  EXPECT_THAT(ValidateBatch(c, EntryLimits(), zero),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("non-zero")));
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
