#include "model/model_version.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace recsys {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

NetworkConfig TinyNetwork() {
  NetworkConfig n;
  n.model = "iisan";
  n.num_items = 3;
  n.embedding_dim = 2;
  n.max_len = 10;
  n.num_heads = 1;
  n.num_layers = 1;
  n.ffn_dim = 4;
  n.bottleneck = 2;
  n.inter_path = false;
  n.standardize_states = true;
  n.modalities = {{"text", 2, {0, 2}, "bert-standin", "fp", true}};
  return n;
}

ModelVersionContents TinyContents(int64_t version) {
  ModelVersionContents c;
  c.manifest.version = version;
  c.manifest.network = TinyNetwork();
  c.manifest.config_json = "{\"epochs\":3,\"max_len\":99}";  // network fields win
  c.manifest.data_fingerprint = "abc";
  c.manifest.metrics_json = "{\"test\":{\"hr@10\":0.5}}";
  c.items.keys = {"a", "bb", "c"};
  c.items.dim = 2;
  c.items.values = {1, 2, 3, 4, 5, 6};
  c.weights = {{"user_encoder.positions.weight", {1, 2}, {7, 8}},
               {"item_encoder.fuse.bias", {2}, {0, 1}}};
  c.standardization = {{"text", {2, 2}, {0, 1, 2, 3}, {1, 1, 0.5, 0.5}}};
  return c;
}

TEST(ModelVersionTest, WritesACompleteDirectoryAndReadsItBack) {
  const std::string base = TestTempPath("versions");
  ASSERT_OK(RemoveRecursively(base));
  ASSERT_OK_AND_ASSIGN(std::string dir, WriteModelVersion(base, TinyContents(3)));
  EXPECT_EQ(dir, JoinPath(base, "3"));
  ASSERT_OK_AND_ASSIGN(auto names, ListDirectory(dir));
  EXPECT_THAT(names, ElementsAre("item_embeddings.safetensors", "item_keys.txt",
                                 "manifest.json", "model.safetensors",
                                 "state_standardization.safetensors",
                                 "user_encoder.safetensors"));
  ASSERT_OK_AND_ASSIGN(auto base_entries, ListDirectory(base));
  EXPECT_THAT(base_entries, ElementsAre("3"));  // no temporaries left

  ASSERT_OK_AND_ASSIGN(auto v, ModelVersion::Open(dir));
  const ModelVersionManifest& m = v->manifest();
  EXPECT_EQ(m.version, 3);
  EXPECT_EQ(m.kind, "train");
  EXPECT_EQ(m.item_count, 3);
  EXPECT_EQ(m.network.max_len, 10);
  EXPECT_EQ(m.network.modalities[0].states, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(nlohmann::json::parse(m.config_json)["epochs"], 3);
  EXPECT_EQ(nlohmann::json::parse(m.metrics_json)["test"]["hr@10"], 0.5);
  EXPECT_FALSE(m.created_at.empty());
  ASSERT_OK_AND_ASSIGN(ItemEmbeddings items, v->ReadItemEmbeddings());
  EXPECT_THAT(items.keys, ElementsAre("a", "bb", "c"));
  EXPECT_EQ(items.values, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  ASSERT_OK_AND_ASSIGN(auto user, v->OpenUserEncoderWeights());
  EXPECT_OK(user->Get("user_encoder.positions.weight").status());
  EXPECT_FALSE(user->Get("item_encoder.fuse.bias").ok());
  ASSERT_OK_AND_ASSIGN(std::vector<StateStandardization> st, v->ReadStandardization());
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].inv_std, (std::vector<float>{1, 1, 0.5, 0.5}));

  EXPECT_THAT(WriteModelVersion(base, TinyContents(3)),
              StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST(ModelVersionTest, ARefreshSharesItsParentsUserEncoderByteForByte) {
  const std::string base = TestTempPath("refresh_versions");
  ASSERT_OK(RemoveRecursively(base));
  ModelVersionContents parent = TinyContents(1);
  parent.manifest.network.modalities[0].backbone_fingerprint = "bb1";
  ASSERT_OK_AND_ASSIGN(std::string parent_dir, WriteModelVersion(base, parent));
  ModelVersionContents child = TinyContents(2);
  child.manifest.network = parent.manifest.network;
  child.manifest.kind = "refresh";
  child.manifest.parent_version = 1;
  child.manifest.network.num_items = 4;  // a different config: other metadata
  child.manifest.config_json = "{\"refreshed\":true}";
  child.items.keys = {"a", "bb", "c", "d"};
  child.items.values = {1, 2, 3, 4, 5, 6, 7, 8};
  child.user_encoder_source = JoinPath(parent_dir, kUserEncoderFile);
  ASSERT_OK_AND_ASSIGN(std::string child_dir, WriteModelVersion(base, child));
  ASSERT_OK_AND_ASSIGN(auto p, ModelVersion::Open(parent_dir));
  ASSERT_OK_AND_ASSIGN(auto v, ModelVersion::Open(child_dir));
  EXPECT_EQ(v->manifest().kind, "refresh");
  EXPECT_EQ(v->manifest().parent_version, 1);
  EXPECT_EQ(v->manifest().network.modalities[0].backbone_fingerprint, "bb1");
  EXPECT_EQ(v->manifest().files.at(kUserEncoderFile).crc32c,
            p->manifest().files.at(kUserEncoderFile).crc32c);
  ASSERT_OK_AND_ASSIGN(std::string a, ReadFileToString(JoinPath(parent_dir, kUserEncoderFile)));
  ASSERT_OK_AND_ASSIGN(std::string b, ReadFileToString(JoinPath(child_dir, kUserEncoderFile)));
  EXPECT_TRUE(a == b);
  // Without the source, the differing config makes another file.
  ModelVersionContents fresh = child;
  fresh.manifest.version = 3;
  fresh.user_encoder_source.clear();
  ASSERT_OK_AND_ASSIGN(std::string fresh_dir, WriteModelVersion(base, fresh));
  ASSERT_OK_AND_ASSIGN(auto f, ModelVersion::Open(fresh_dir));
  EXPECT_NE(f->manifest().files.at(kUserEncoderFile).crc32c,
            p->manifest().files.at(kUserEncoderFile).crc32c);
}

TEST(ModelVersionTest, RefusesInconsistentContents) {
  const std::string base = TestTempPath("bad_contents");
  ModelVersionContents c = TinyContents(0);
  EXPECT_THAT(WriteModelVersion(base, c), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("version")));
  c = TinyContents(1);
  c.items.values.pop_back();
  EXPECT_THAT(WriteModelVersion(base, c), StatusIs(absl::StatusCode::kInvalidArgument));
  c = TinyContents(1);
  c.weights.erase(c.weights.begin());
  EXPECT_THAT(WriteModelVersion(base, c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_encoder")));
  c = TinyContents(1);
  c.manifest.network.num_heads = 3;  // does not divide 2
  EXPECT_THAT(WriteModelVersion(base, c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_heads")));
  EXPECT_FALSE(PathExists(base) && !ListDirectory(base)->empty());
}

TEST(ModelVersionTest, RefusesNonFiniteValuesAndWritesNothing) {
  const std::string base = TestTempPath("garbage_versions");
  ASSERT_OK(RemoveRecursively(base));
  ModelVersionContents c = TinyContents(1);
  c.items.values[2] = std::nanf("");
  EXPECT_THAT(WriteModelVersion(base, c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"bb\" dim 0"), HasSubstr("not finite"))));
  c = TinyContents(1);
  c.weights[0].values[1] = std::numeric_limits<float>::infinity();
  EXPECT_THAT(WriteModelVersion(base, c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("user_encoder.positions.weight has non-finite")));
  c = TinyContents(1);
  c.standardization[0].inv_std[0] = std::nanf("");
  EXPECT_THAT(WriteModelVersion(base, c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("standardization of text")));
  c = TinyContents(1);
  c.manifest.metrics_json = "{\"test\":{\"hr@10\":nan}}";  // what %f prints for NaN
  EXPECT_THAT(WriteModelVersion(base, c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("metrics_json")));
  EXPECT_FALSE(PathExists(base));
}

TEST(ModelVersionTest, NamesAreStrictDecimals) {
  EXPECT_THAT(ParseModelVersionName("12"), IsOkAndHolds(12));
  for (const char* bad : {"", "0", "007", "-3", "+3", " 3", "3a", "v1", ".tmp-3-1",
                          "99999999999999999999"}) {
    EXPECT_THAT(ParseModelVersionName(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  EXPECT_THAT(ModelVersionOfDirectory("run/models/7/"), IsOkAndHolds(7));
  EXPECT_THAT(ModelVersionOfDirectory("7"), IsOkAndHolds(7));
  EXPECT_THAT(ModelVersionOfDirectory("run/models/latest"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("latest")));

  const std::string base = TestTempPath("numbered");
  ASSERT_OK(RemoveRecursively(base));
  EXPECT_THAT(NextModelVersion(base), IsOkAndHolds(1));  // missing dir
  for (const char* name : {"3", "10", "v1", "007", ".tmp-11-1"}) {
    ASSERT_OK(CreateDirectories(JoinPath(base, name)));
  }
  EXPECT_THAT(ListModelVersions(base), IsOkAndHolds(ElementsAre(3, 10)));
  EXPECT_THAT(NextModelVersion(base), IsOkAndHolds(11));
}

// Every byte flip in every file, and edits of the manifest's fields, are
// refused as DATA_LOSS (never loaded as something else).
TEST(ModelVersionTest, AnyDamageIsRefused) {
  const std::string base = TestTempPath("damage");
  ASSERT_OK(RemoveRecursively(base));
  ASSERT_OK_AND_ASSIGN(std::string dir, WriteModelVersion(base, TinyContents(5)));
  ASSERT_OK_AND_ASSIGN(auto names, ListDirectory(dir));
  for (const std::string& name : names) {
    const std::string path = JoinPath(dir, name);
    ASSERT_OK_AND_ASSIGN(const std::string original, ReadFileToString(path));
    for (size_t i = 0; i < original.size(); i += std::max<size_t>(1, original.size() / 40)) {
      std::string damaged = original;
      damaged[i] ^= 0x20;
      ASSERT_OK(WriteFileAtomically(path, damaged));
      absl::StatusOr<std::unique_ptr<ModelVersion>> v = ModelVersion::Open(dir);
      // A flip inside the manifest's whitespace or a key's case can still
      // parse; it then must not change what is loaded.
      if (v.ok()) {
        EXPECT_EQ(name, "manifest.json") << "flip at " << i;
        EXPECT_EQ((*v)->version(), 5);
        EXPECT_OK((*v)->ReadItemEmbeddings().status());
      } else {
        EXPECT_THAT(v.status(), StatusIs(absl::StatusCode::kDataLoss)) << name << " @" << i;
      }
    }
    ASSERT_OK(WriteFileAtomically(path, original));
  }
  ASSERT_OK(ModelVersion::Open(dir).status());

  // The manifest's version must be the directory's.
  const std::string manifest = JoinPath(dir, "manifest.json");
  ASSERT_OK_AND_ASSIGN(std::string text, ReadFileToString(manifest));
  auto j = nlohmann::json::parse(text);
  j["version"] = "4";
  ASSERT_OK(WriteFileAtomically(manifest, j.dump()));
  EXPECT_THAT(ModelVersion::Open(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("says version 4")));
  // A manifest that leaves a required file out.
  j = nlohmann::json::parse(text);
  j["files"].erase("item_embeddings.safetensors");
  ASSERT_OK(WriteFileAtomically(manifest, j.dump()));
  EXPECT_THAT(ModelVersion::Open(dir), StatusIs(absl::StatusCode::kDataLoss,
                                                HasSubstr("item_embeddings.safetensors")));
  // A config without a field the networks need: no fallback.
  j = nlohmann::json::parse(text);
  j["config"].erase("ffn_dim");
  ASSERT_OK(WriteFileAtomically(manifest, j.dump()));
  EXPECT_THAT(ModelVersion::Open(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("ffn_dim")));
  ASSERT_OK(WriteFileAtomically(manifest, text));
  ASSERT_OK(ModelVersion::Open(dir).status());
  EXPECT_THAT(ModelVersion::Open(JoinPath(base, "6")), StatusIs(absl::StatusCode::kNotFound));
}

// A version directory written by the trainer before model/ existed (the
// previous main's train binary on a tiny demo catalog, checked in): it loads,
// and its standardisation statistics are found in model.safetensors.
TEST(ModelVersionTest, LoadsVersionsWrittenByThePreviousExporter) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  ASSERT_NE(srcdir, nullptr);
  const std::string dir =
      JoinPath(srcdir, "recsys/model/testdata/legacy_models/1");
  ASSERT_OK_AND_ASSIGN(auto v, ModelVersion::Open(dir));
  EXPECT_EQ(v->version(), 1);
  EXPECT_EQ(v->manifest().network.model, "iisan");
  EXPECT_EQ(v->manifest().network.modalities.size(), 2u);
  ASSERT_OK_AND_ASSIGN(ItemEmbeddings items, v->ReadItemEmbeddings());
  EXPECT_EQ(static_cast<int64_t>(items.keys.size()), v->manifest().item_count);
  ASSERT_OK_AND_ASSIGN(std::vector<StateStandardization> st, v->ReadStandardization());
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].modality, "text");
  EXPECT_EQ(st[1].modality, "image");
  // Written before popularity was stored: loads, with no table.
  ASSERT_OK_AND_ASSIGN(std::vector<float> popularity, v->ReadItemPopularity());
  EXPECT_TRUE(popularity.empty());
}

TEST(ModelVersionTest, StoresTheItemPopularityWithTheVersion) {
  const std::string base = TestTempPath("popularity");
  ASSERT_OK(RemoveRecursively(base));
  ModelVersionContents c = TinyContents(2);
  c.item_popularity = {3, 0, 7};
  ASSERT_OK_AND_ASSIGN(std::string dir, WriteModelVersion(base, c));
  ASSERT_OK_AND_ASSIGN(auto v, ModelVersion::Open(dir));
  EXPECT_EQ(v->manifest().files.count(kItemPopularityFile), 1u);
  ASSERT_OK_AND_ASSIGN(std::vector<float> popularity, v->ReadItemPopularity());
  EXPECT_EQ(popularity, (std::vector<float>{3, 0, 7}));

  ModelVersionContents none = TinyContents(3);
  ASSERT_OK_AND_ASSIGN(dir, WriteModelVersion(base, none));
  ASSERT_OK_AND_ASSIGN(v, ModelVersion::Open(dir));
  EXPECT_EQ(v->manifest().files.count(kItemPopularityFile), 0u);
  ASSERT_OK_AND_ASSIGN(popularity, v->ReadItemPopularity());
  EXPECT_TRUE(popularity.empty());

  ModelVersionContents wrong = TinyContents(4);
  wrong.item_popularity = {1, 2};  // three items
  EXPECT_THAT(WriteModelVersion(base, wrong).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("item_popularity")));
  wrong.item_popularity = {1, -2, 3};
  EXPECT_THAT(WriteModelVersion(base, wrong).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("item_popularity")));
}

}  // namespace
}  // namespace recsys
