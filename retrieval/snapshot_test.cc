#include "retrieval/snapshot.h"

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retrieval/test_util.h"

namespace recsys {
namespace retrieval {
namespace {

using ::testing::HasSubstr;
constexpr int kDim = 8;

std::shared_ptr<const CollectionVersion> MakeVersion(const CollectionConfig& c,
                                                     int64_t n) {
  EntryTable t;
  for (Entry& e : MakeEntries(0, n, c.dimension, 5)) {
    t.keys.push_back(e.key);
    t.payloads.push_back({{"parity", e.payload[0].second}, {"title", "x" + e.key}});
    t.vectors.insert(t.vectors.end(), e.vector.begin(), e.vector.end());
  }
  auto v = CollectionVersion::Build(4, c, std::move(t));
  EXPECT_OK(v.status());
  return *v;
}

TEST(SnapshotTest, RoundTripKeepsEverything) {
  for (const char* factory : {"Flat", "IVF4,PQ4"}) {
    const std::string dir = FreshTestDir("snap") + "/v4";
    CollectionConfig c = TestConfig("c", kDim, factory);
    auto v = MakeVersion(c, 300);
    ASSERT_OK(WriteSnapshot(dir, *v, 17));
    EXPECT_FALSE(PathExists(dir + ".tmp"));
    ASSERT_OK_AND_ASSIGN(LoadedSnapshot s, ReadSnapshot(dir, c));
    EXPECT_EQ(s.covered_log_seq, 17);
    EXPECT_EQ(s.version->version(), 4);
    ASSERT_EQ(s.version->size(), 300);
    EXPECT_EQ(s.version->keeps_own_vectors(), std::string(factory) != "Flat");
    for (int64_t i = 0; i < 300; i += 37) {
      EXPECT_EQ(s.version->key(i), v->key(i));
      EXPECT_EQ(s.version->payload(i), v->payload(i));
      auto a = s.version->vector(i);
      auto b = v->vector(i);
      EXPECT_EQ(std::vector<float>(a.begin(), a.end()),
                std::vector<float>(b.begin(), b.end()));
    }
  }
}

TEST(SnapshotTest, FlippedByteIsRefusedNamingTheFile) {
  const CollectionConfig c = TestConfig("c", kDim);
  auto v = MakeVersion(c, 100);
  for (const char* file : {"index.faiss", "entries.bin"}) {
    const std::string dir = FreshTestDir("snapflip") + "/v4";
    ASSERT_OK(WriteSnapshot(dir, *v, 1));
    ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(dir + "/" + file));
    bytes[bytes.size() / 2] ^= 0x01;
    ASSERT_OK(WriteFileAtomically(dir + "/" + file, bytes));
    EXPECT_THAT(ReadSnapshot(dir, c).status(),
                StatusIs(absl::StatusCode::kDataLoss,
                         HasSubstr(std::string(file) + " fails its checksum")));
  }
  const std::string dir = FreshTestDir("snaptrunc") + "/v4";
  ASSERT_OK(WriteSnapshot(dir, *v, 1));
  ASSERT_OK(WriteFileAtomically(dir + "/MANIFEST.json", "{\"files\": "));
  EXPECT_THAT(ReadSnapshot(dir, c).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("MANIFEST")));
}

TEST(SnapshotTest, ConfigJsonRoundTrip) {
  CollectionConfig c = TestConfig("c", 32, "HNSW32", Metric::kCosine);
  c.build_params["efConstruction"] = "64";
  c.max_training_vectors = 1000;
  ASSERT_OK_AND_ASSIGN(CollectionConfig back, ConfigFromJson(ConfigToJson(c)));
  EXPECT_EQ(back.name, c.name);
  EXPECT_EQ(back.dimension, 32);
  EXPECT_EQ(back.metric, Metric::kCosine);
  EXPECT_EQ(back.index_factory, "HNSW32");
  EXPECT_EQ(back.build_params, c.build_params);
  EXPECT_EQ(back.max_training_vectors, 1000);
}

// Sealed files refuse any edit; the operator's upgrade seals legacy ones.
TEST(SnapshotTest, MetadataIsSealedAndLegacyFilesOnlyLoadOnceSealed) {
  CollectionConfig c = TestConfig("items", 8, "HNSW32");
  const std::string sealed = ConfigToJson(c);
  ASSERT_OK(ConfigFromJson(sealed).status());
  std::string edited = sealed;
  edited[edited.find("8,")] = '9';  // the dimension
  EXPECT_THAT(ConfigFromJson(edited).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("checksum")));
  const std::string legacy =
      R"({"name": "items", "dimension": 8, "metric": "l2", "index_factory": "Flat",)"
      R"( "max_training_vectors": 0, "flat_fallback_when_untrainable": false,)"
      R"( "build_params": {}})";
  // Written before sealing: read (exactly that format's members), flagged
  // for the caller to seal; with any other member it is damage.
  bool was_legacy = false;
  ASSERT_OK(ConfigFromJson(legacy, &was_legacy).status());
  EXPECT_TRUE(was_legacy);
  std::string odd = legacy;
  odd.insert(1, R"("crc32b": 7, )");
  EXPECT_THAT(ConfigFromJson(odd).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("no crc32c")));
  ASSERT_OK_AND_ASSIGN(std::string upgraded, SealLegacyJson(legacy, "collection.json"));
  ASSERT_OK_AND_ASSIGN(CollectionConfig back, ConfigFromJson(upgraded));
  EXPECT_EQ(back.metric, Metric::kL2);
  EXPECT_THAT(SealLegacyJson(upgraded, "collection.json").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(LiveRecord live, LiveFromJson(LiveToJson({13, true})));
  EXPECT_EQ(live.version, 13);
  EXPECT_TRUE(live.rolled_back);
  ASSERT_OK_AND_ASSIGN(LiveRecord old_live, LiveFromJson("13\n", &was_legacy));
  EXPECT_TRUE(was_legacy);
  EXPECT_EQ(old_live.version, 13);
  for (const char* damaged : {"03\n", " 13\n", "13\n\n", "1e3\n", "-13\n", ""}) {
    EXPECT_THAT(LiveFromJson(damaged).status(), StatusIs(absl::StatusCode::kDataLoss))
        << damaged;
  }
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
