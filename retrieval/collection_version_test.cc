#include "retrieval/collection_version.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retrieval/test_util.h"

namespace recsys {
namespace retrieval {
namespace {

constexpr int kDim = 8;

EntryTable Table(int64_t n, uint32_t seed) {
  EntryTable t;
  for (Entry& e : MakeEntries(0, n, kDim, seed)) {
    t.keys.push_back(e.key);
    t.payloads.push_back(e.payload);
    t.vectors.insert(t.vectors.end(), e.vector.begin(), e.vector.end());
  }
  return t;
}

TEST(CollectionVersionTest, FindsKeysAndVectors) {
  EntryTable t = Table(50, 1);
  const std::vector<float> v7(t.vectors.begin() + 7 * kDim,
                              t.vectors.begin() + 8 * kDim);
  ASSERT_OK_AND_ASSIGN(auto v, CollectionVersion::Build(3, TestConfig("c", kDim),
                                                        std::move(t)));
  EXPECT_EQ(v->version(), 3);
  EXPECT_EQ(v->size(), 50);
  ASSERT_TRUE(v->Find("key7").has_value());
  const int64_t id = *v->Find("key7");
  EXPECT_EQ(v->key(id), "key7");
  auto got = v->vector(id);
  EXPECT_EQ(std::vector<float>(got.begin(), got.end()), v7);
  EXPECT_FALSE(v->Find("nope").has_value());
  EXPECT_FALSE(v->keeps_own_vectors());  // Flat holds them
  EXPECT_GT(v->memory_bytes(), 50 * kDim * 4);
}

// Keys and payloads are stored packed: every shape must read back as given.
TEST(CollectionVersionTest, PackedKeysAndPayloadsReadBackExactly) {
  EntryTable t;
  const std::string long_value(300, 'x');  // length needs a 2-byte varint
  std::vector<Payload> payloads = {
      {},
      {{"a", ""}},
      {{"", "empty field name"}},
      {{"title", "caf\xc3\xa9"}, {"z", long_value}},
      {{"f1", "1"}, {"f2", "2"}, {"f3", std::string("nul\0inside", 11)}},
  };
  const std::vector<std::string> keys = {"k0", std::string(200, 'k'), "", "k3",
                                         std::string("k\0", 2)};
  for (size_t i = 0; i < keys.size(); ++i) {
    t.keys.push_back(keys[i]);
    t.payloads.push_back(payloads[i]);
    for (int j = 0; j < kDim; ++j) t.vectors.push_back(j == int(i) ? 1.f : 0.f);
  }
  ASSERT_OK_AND_ASSIGN(auto v, CollectionVersion::Build(1, TestConfig("c", kDim),
                                                        std::move(t)));
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(v->key(i), keys[i]);
    ASSERT_EQ(v->Find(keys[i]), std::optional<int64_t>(i)) << i;
    EXPECT_EQ(v->payload(i), payloads[i]) << i;
    for (const auto& [field, value] : payloads[i]) {
      EXPECT_EQ(v->PayloadField(i, field), std::optional<absl::string_view>(value));
    }
    EXPECT_EQ(v->PayloadField(i, "missing"), std::nullopt);
  }
  EXPECT_EQ(v->Find("k"), std::nullopt);
  EXPECT_EQ(v->Find(std::string(199, 'k')), std::nullopt);
}

// More distinct filters than the per-version bitmap cache holds, each used
// twice: every answer must still be exactly the matching entries.
TEST(CollectionVersionTest, FilterCacheEvictionKeepsAnswersExact) {
  const int n = 300;
  EntryTable t;
  for (Entry& e : MakeEntries(0, n, kDim, 4)) {
    t.keys.push_back(e.key);
    const int i = std::stoi(e.key.substr(3));
    t.payloads.push_back({{"bucket", std::to_string(i % 25)}});
    t.vectors.insert(t.vectors.end(), e.vector.begin(), e.vector.end());
  }
  ASSERT_OK_AND_ASSIGN(auto v, CollectionVersion::Build(1, TestConfig("c", kDim),
                                                        std::move(t)));
  const std::vector<float> q = RandomUnitVectors(1, kDim, 5);
  for (int round = 0; round < 2; ++round) {
    for (int b = 0; b < 25; ++b) {
      VersionSearchOptions o;
      o.payload_filter = {{"bucket", std::to_string(b)}};
      ASSERT_OK_AND_ASSIGN(auto r, v->Search({VersionQuery{q.data(), 100, {}}}, o));
      ASSERT_EQ(r[0].size(), 12u) << "bucket " << b;  // 300 / 25 entries each
      for (const SearchHit& h : r[0]) {
        EXPECT_EQ(std::stoi(std::string(v->key(h.id)).substr(3)) % 25, b);
      }
    }
  }
}

TEST(CollectionVersionTest, DuplicateKeysAreDataLoss) {
  EntryTable t = Table(3, 1);
  t.keys[2] = t.keys[0];
  EXPECT_THAT(CollectionVersion::Build(1, TestConfig("c", kDim), std::move(t)),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("twice")));
}

TEST(CollectionVersionTest, ExclusionsAreExactPerQueryInOneBatch) {
  ASSERT_OK_AND_ASSIGN(
      auto v, CollectionVersion::Build(1, TestConfig("c", kDim), Table(200, 2)));
  // Query 0 excludes its own 3 best hits; query 1 excludes nothing.
  auto q0 = v->vector(0);
  auto q1 = v->vector(1);
  VersionQuery a{q0.data(), 5, {}};
  VersionQuery b{q1.data(), 5, {}};
  ASSERT_OK_AND_ASSIGN(auto plain, v->Search({a, b}, {}));
  a.exclude_ids = {plain[0][0].id, plain[0][1].id, plain[0][2].id};
  ASSERT_OK_AND_ASSIGN(auto excl, v->Search({a, b}, {}));
  ASSERT_EQ(excl[0].size(), 5u);
  EXPECT_EQ(excl[0][0].id, plain[0][3].id);
  EXPECT_EQ(excl[0][1].id, plain[0][4].id);
  EXPECT_EQ(excl[1].size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(excl[1][i].id, plain[1][i].id);
  EXPECT_EQ(plain[0][0].id, 0);  // a stored vector finds itself first
}

TEST(CollectionVersionTest, PayloadFilterKeepsOnlyMatches) {
  ASSERT_OK_AND_ASSIGN(
      auto v, CollectionVersion::Build(1, TestConfig("c", kDim), Table(200, 3)));
  VersionSearchOptions odd;
  odd.payload_filter = {{"parity", "odd"}};
  auto q = v->vector(10);  // an even key
  ASSERT_OK_AND_ASSIGN(auto r, v->Search({VersionQuery{q.data(), 10, {}}}, odd));
  ASSERT_EQ(r[0].size(), 10u);
  for (const SearchHit& h : r[0]) {
    EXPECT_EQ(*FindField(v->payload(h.id), "parity"), "odd");
  }
  VersionSearchOptions none;
  none.payload_filter = {{"parity", "prime"}};
  ASSERT_OK_AND_ASSIGN(auto empty,
                       v->Search({VersionQuery{q.data(), 10, {}}}, none));
  EXPECT_TRUE(empty[0].empty());
}

TEST(CollectionVersionTest, KIsCappedBySize) {
  ASSERT_OK_AND_ASSIGN(
      auto v, CollectionVersion::Build(1, TestConfig("c", kDim), Table(3, 4)));
  auto q = v->vector(0);
  ASSERT_OK_AND_ASSIGN(auto r, v->Search({VersionQuery{q.data(), 10, {0}}}, {}));
  EXPECT_EQ(r[0].size(), 2u);
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
