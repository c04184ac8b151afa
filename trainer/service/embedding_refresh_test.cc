// The refresh on a really trained (tiny) IISAN version over a stand-in text
// cache: what is copied, what is encoded, what the new version holds, and
// the inputs it refuses (nothing written then).
#include "trainer/service/embedding_refresh.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/encoders/bert_text_encoder.h"
#include "model/encoders/image_io.h"
#include "model/encoders/vit_image_encoder.h"
#include "model/hidden_state_cache.h"
#include "model/items_table.h"
#include "model/model_version.h"
#include "trainer/backbone/cache_builder.h"
#include "trainer/backbone/job_backbone.h"
#include "trainer/data/demo_data.h"
#include "trainer/data/standin_text_cache.h"
#include "trainer/training/train_pipeline.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;

struct Fixture {
  std::string dir, models, cache;
  std::vector<ItemTableRow> items;
};

// Version 1 of a small model (1 epoch, d 16) on the fixture's users.
TrainPipelineOptions SmallVersionOne(const std::string& interactions, const std::string& text_cache,
                                     const std::string& models_dir) {
  TrainPipelineOptions p;
  p.interactions = interactions;
  p.text_cache = text_cache;
  p.models_dir = models_dir;
  p.version = 1;
  p.trainer.epochs = 1;
  p.trainer.embedding_dim = 16;
  p.trainer.bottleneck = 8;
  p.trainer.ffn_dim = 32;
  p.trainer.num_threads = 1;
  return p;
}

// Trains version 1 once for the whole test binary.
const Fixture& Trained() {
  static const Fixture* f = [] {
    auto* f = new Fixture;
    f->dir = TestTempPath("refresh");
    f->models = JoinPath(f->dir, "models");
    f->cache = JoinPath(f->dir, "text.st");
    EXPECT_OK(RemoveRecursively(f->dir));
    DemoDataOptions d;
    d.num_items = 80;
    d.num_users = 200;
    d.num_categories = 4;
    d.num_styles = 2;
    d.text_states = 3;
    d.text_hidden = 8;
    d.image_states = 3;
    d.image_hidden = 8;
    EXPECT_OK(WriteDemoData(GenerateDemoData(d), d, f->dir));
    StandinTextOptions so;
    so.num_states = 5;
    so.hidden_size = 16;
    EXPECT_OK(WriteStandinTextCache(JoinPath(f->dir, "items.tsv"), f->cache, so));
    EXPECT_OK(RunTrainPipeline(SmallVersionOne(JoinPath(f->dir, "users.tsv"), f->cache, f->models))
                  .status());
    absl::StatusOr<std::vector<ItemTableRow>> items = ReadItemTable(JoinPath(f->dir, "items.tsv"));
    EXPECT_OK(items.status());
    f->items = *items;
    return f;
  }();
  return *f;
}

std::string WriteCatalog(const std::string& name, const std::vector<ItemTableRow>& rows) {
  std::string text;
  for (const ItemTableRow& r : rows) absl::StrAppend(&text, r.key, "\t", r.value, "\n");
  const std::string path = JoinPath(Trained().dir, name);
  EXPECT_OK(WriteFileAtomically(path, text));
  return path;
}

EmbeddingRefreshOptions Options(const std::string& catalog, int64_t version) {
  EmbeddingRefreshOptions o;
  o.models_dir = Trained().models;
  o.parent_version = 1;
  o.version = version;
  o.items_table = catalog;
  o.text_cache = Trained().cache;
  o.cache_out = JoinPath(Trained().dir, absl::StrCat("refreshed-", version, ".st"));
  return o;
}

const float* Row(const ItemEmbeddings& e, const std::string& key) {
  for (size_t i = 0; i < e.keys.size(); ++i) {
    if (e.keys[i] == key) return e.values.data() + i * e.dim;
  }
  return nullptr;
}

TEST(EmbeddingRefreshTest, CopiesUnchangedEncodesChangedAndNewDropsRemoved) {
  const Fixture& f = Trained();
  ASSERT_OK_AND_ASSIGN(auto parent, ModelVersion::Open(ModelVersionPath(f.models, 1)));
  ASSERT_OK_AND_ASSIGN(ItemEmbeddings before, parent->ReadItemEmbeddings());
  ASSERT_FALSE(parent->manifest().network.modalities[0].backbone_fingerprint.empty());

  // Items 0..2 removed; item 3 gets item 10's title (so the same states);
  // item 4 a title of its own; two new items, one titled like item 11.
  std::vector<ItemTableRow> now(f.items.begin() + 3, f.items.end());
  now[0].value = f.items[10].value;
  now[1].value = "brand new widget";
  now.push_back({"NEW1", f.items[11].value});
  now.push_back({"NEW2", "quantum flux capacitor"});
  ASSERT_OK_AND_ASSIGN(EmbeddingRefreshResult r, RunEmbeddingRefresh(Options(WriteCatalog("now.tsv", now), 2)));
  EXPECT_EQ(r.items, static_cast<int64_t>(now.size()));
  EXPECT_EQ(r.removed, 3);
  EXPECT_EQ(r.recomputed, 4);
  EXPECT_EQ(r.changed, 2);
  EXPECT_EQ(r.added, 2);
  EXPECT_EQ(r.reused, static_cast<int64_t>(now.size()) - 4);
  EXPECT_EQ(r.reembedded, 0);
  EXPECT_GT(r.verified, 0);
  EXPECT_LT(r.max_verify_difference, 1e-3);

  ASSERT_OK_AND_ASSIGN(auto v, ModelVersion::Open(r.version_dir));
  EXPECT_EQ(v->manifest().kind, "refresh");
  EXPECT_EQ(v->manifest().parent_version, 1);
  EXPECT_EQ(v->manifest().item_count, static_cast<int64_t>(now.size()));
  EXPECT_EQ(v->manifest().network.modalities[0].backbone_fingerprint,
            parent->manifest().network.modalities[0].backbone_fingerprint);
  EXPECT_EQ(v->manifest().files.at(kUserEncoderFile).crc32c,
            parent->manifest().files.at(kUserEncoderFile).crc32c);
  ASSERT_OK_AND_ASSIGN(ItemEmbeddings after, v->ReadItemEmbeddings());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Row(after, f.items[i].key), nullptr) << f.items[i].key;
  // Unchanged items: bit for bit.
  for (size_t i = 2; i + 2 < now.size(); ++i) {
    const float* a = Row(after, now[i].key);
    const float* b = Row(before, now[i].key);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(std::memcmp(a, b, after.dim * sizeof(float)), 0) << now[i].key;
  }
  // Re-encoded items: the same title gives (nearly) the embedding the
  // parent's networks gave that title; a new title something else.
  auto near = [&](const float* a, const float* b) {
    double diff = 0;
    for (int64_t j = 0; j < after.dim; ++j) diff = std::max(diff, std::fabs(double(a[j]) - b[j]));
    return diff;
  };
  EXPECT_LT(near(Row(after, now[0].key), Row(before, f.items[10].key)), 1e-4);
  EXPECT_GT(near(Row(after, now[0].key), Row(before, now[0].key)), 1e-3);
  EXPECT_LT(near(Row(after, "NEW1"), Row(before, f.items[11].key)), 1e-4);
  EXPECT_GT(near(Row(after, now[1].key), Row(before, now[1].key)), 1e-3);

  // The updated cache: every item, fingerprinted; refreshing again from it
  // with the same catalog encodes nothing and copies everything.
  ASSERT_OK_AND_ASSIGN(auto cache, HiddenStateCache::Open(r.cache_out));
  EXPECT_EQ(cache->num_items(), static_cast<int64_t>(now.size()));
  EXPECT_EQ(cache->ContentFingerprint(cache->RowOf("NEW2")), ItemContentFingerprint("quantum flux capacitor"));
  EmbeddingRefreshOptions again = Options(WriteCatalog("now.tsv", now), 3);
  again.parent_version = 2;
  again.text_cache = r.cache_out;
  ASSERT_OK_AND_ASSIGN(EmbeddingRefreshResult r3, RunEmbeddingRefresh(again));
  EXPECT_EQ(r3.reused, static_cast<int64_t>(now.size()));
  EXPECT_EQ(r3.recomputed, 0);
  EXPECT_EQ(r3.removed, 0);
}

TEST(EmbeddingRefreshTest, RefusesBadInputAndWritesNoVersion) {
  const Fixture& f = Trained();
  std::vector<ItemTableRow> now = f.items;
  now.push_back({"NEW", "another widget"});
  const std::string catalog = WriteCatalog("bad.tsv", now);

  EmbeddingRefreshOptions unknown = Options(catalog, 20);
  unknown.parent_version = 77;
  EXPECT_THAT(RunEmbeddingRefresh(unknown), StatusIs(absl::StatusCode::kNotFound));

  EmbeddingRefreshOptions missing = Options(JoinPath(f.dir, "no-such.tsv"), 21);
  EXPECT_THAT(RunEmbeddingRefresh(missing), StatusIs(absl::StatusCode::kNotFound));

  // A cache of another stand-in backbone (another seed).
  StandinTextOptions other;
  other.num_states = 5;
  other.hidden_size = 16;
  other.seed = 99;
  const std::string foreign = JoinPath(f.dir, "foreign.st");
  ASSERT_OK(WriteStandinTextCache(catalog, foreign, other));
  EmbeddingRefreshOptions mismatch = Options(catalog, 22);
  mismatch.text_cache = foreign;
  EXPECT_THAT(RunEmbeddingRefresh(mismatch),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("backbone fingerprint")));

  // The demo's synthetic cache cannot encode the new item (and it is not
  // the version's backbone either: refused before that).
  EmbeddingRefreshOptions synthetic = Options(catalog, 23);
  synthetic.text_cache = JoinPath(f.dir, "text_states.safetensors");
  EXPECT_THAT(RunEmbeddingRefresh(synthetic), StatusIs(absl::StatusCode::kFailedPrecondition));

  // A cancel (the progress hook says stop) leaves nothing either.
  EmbeddingRefreshOptions cancelled = Options(catalog, 24);
  cancelled.on_progress = [](const RefreshProgress& p) {
    return p.phase == "embed" ? absl::CancelledError("cancelled") : absl::OkStatus();
  };
  EXPECT_THAT(RunEmbeddingRefresh(cancelled), StatusIs(absl::StatusCode::kCancelled));

  ASSERT_OK_AND_ASSIGN(std::vector<int64_t> versions, ListModelVersions(f.models));
  for (int64_t v : versions) EXPECT_LT(v, 20) << "a refused refresh wrote version " << v;
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListDirectory(f.models));
  for (const std::string& n : names) EXPECT_NE(n.rfind(".tmp-", 0), 0u) << n;
}

// A cache built by the cache builder with a BERT-architecture stand-in (as a
// build_cache job builds it): the refresh re-creates that encoder from the
// same vocab / weights / size, and refuses another size.
TEST(EmbeddingRefreshTest, BertBackboneFromBuildCacheIsRecreatedOrRefused) {
  const Fixture& f = Trained();
  const std::string dir = JoinPath(f.dir, "bert");
  ASSERT_OK(CreateDirectories(dir));
  std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  absl::flat_hash_set<std::string> words;
  for (const ItemTableRow& r : f.items) {
    for (const std::string& w : TitleTokens(r.value)) {
      if (words.insert(w).second) absl::StrAppend(&vocab, w, "\n");
    }
  }
  absl::StrAppend(&vocab, "brand\nnew\n");
  const std::string vocab_path = JoinPath(dir, "vocab.txt");
  ASSERT_OK(WriteFileAtomically(vocab_path, vocab));
  ASSERT_OK_AND_ASSIGN(BertTextEncoderOptions eo, JobBertOptions("b", vocab_path, "", "2x32", "cpu"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TextEncoder> encoder, CreateBertTextEncoder(eo));
  CacheBuildOptions co;
  co.output_path = JoinPath(dir, "bert.st");
  ASSERT_OK(BuildTextCache(f.items, encoder.get(), co).status());

  const TrainPipelineOptions p =
      SmallVersionOne(JoinPath(f.dir, "users.tsv"), co.output_path, JoinPath(dir, "models"));
  ASSERT_OK(RunTrainPipeline(p).status());

  std::vector<ItemTableRow> now = f.items;
  now[0].value = "brand new " + now[0].value;
  now.push_back({"NEW", f.items[5].value});
  const std::string catalog = WriteCatalog("bert.tsv", now);
  EmbeddingRefreshOptions o = Options(catalog, 2);
  o.models_dir = p.models_dir;
  o.text_cache = co.output_path;
  o.cache_out = JoinPath(dir, "refreshed.st");
  o.vocab = vocab_path;
  o.backbone = "2x64";  // not the size the cache was built with
  EXPECT_THAT(RunEmbeddingRefresh(o), StatusIs(absl::StatusCode::kFailedPrecondition,
                                               HasSubstr("is not version 1's")));
  o.vocab.clear();
  EXPECT_THAT(RunEmbeddingRefresh(o), StatusIs(absl::StatusCode::kInvalidArgument,
                                               HasSubstr("spec.refresh.vocab")));
  o.vocab = vocab_path;
  o.backbone = "2x32";
  ASSERT_OK_AND_ASSIGN(EmbeddingRefreshResult r, RunEmbeddingRefresh(o));
  EXPECT_EQ(r.recomputed, 2);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.added, 1);
  EXPECT_EQ(r.reused, static_cast<int64_t>(f.items.size()) - 1);
  ASSERT_OK_AND_ASSIGN(auto parent, ModelVersion::Open(ModelVersionPath(p.models_dir, 1)));
  ASSERT_OK_AND_ASSIGN(auto v, ModelVersion::Open(r.version_dir));
  ASSERT_OK_AND_ASSIGN(ItemEmbeddings before, parent->ReadItemEmbeddings());
  ASSERT_OK_AND_ASSIGN(ItemEmbeddings after, v->ReadItemEmbeddings());
  // The new item has item 5's title: the same BERT states, so (nearly) the
  // same embedding.
  double diff = 0;
  for (int64_t j = 0; j < after.dim; ++j) {
    diff = std::max(diff, std::fabs(double(Row(after, "NEW")[j]) - Row(before, f.items[5].key)[j]));
  }
  EXPECT_LT(diff, 1e-4);
}

// A version with an image side: the ViT stand-in is re-created from the
// image cache's own config; an item whose image file changed is encoded
// again on that side only.
TEST(EmbeddingRefreshTest, ImageSideReencodesChangedImageFiles) {
  const Fixture& f = Trained();
  const std::string dir = JoinPath(f.dir, "vit");
  ASSERT_OK(CreateDirectories(dir));
  auto write_image = [&](const std::string& name, int seed) {
    RgbImage im;
    im.width = 20 + seed % 7;
    im.height = 18 + seed % 5;
    for (int p = 0; p < im.width * im.height * 3; ++p) {
      im.pixels.push_back(static_cast<uint8_t>((p * (3 + seed % 11) + 17 * seed) % 256));
    }
    absl::StatusOr<std::string> png = EncodePng(im);
    ASSERT_OK(png.status());
    ASSERT_OK(WriteFileAtomically(JoinPath(dir, name), *png));
  };
  std::string table;
  std::vector<CacheItem> images;
  for (size_t i = 0; i < f.items.size(); ++i) {
    const std::string name = absl::StrCat(f.items[i].key, ".png");
    write_image(name, static_cast<int>(i));
    absl::StrAppend(&table, f.items[i].key, "\t", name, "\n");
    images.push_back({f.items[i].key, name});
  }
  ASSERT_OK(WriteFileAtomically(JoinPath(dir, "images.tsv"), table));
  ViTImageEncoderOptions vo;
  vo.config.hidden_size = 16;
  vo.config.num_hidden_layers = 4;  // 5 states: as many blocks as the text side
  vo.config.num_attention_heads = 2;
  vo.config.intermediate_size = 32;
  vo.config.image_size = 16;
  vo.config.patch_size = 8;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ImageEncoder> vit, CreateViTImageEncoder(vo));
  CacheBuildOptions co;
  co.output_path = JoinPath(dir, "image.st");
  co.image_base_dir = dir;
  ASSERT_OK(BuildImageCache(images, vit.get(), co).status());

  TrainPipelineOptions p = SmallVersionOne(JoinPath(f.dir, "users.tsv"), f.cache, JoinPath(dir, "models"));
  p.image_cache = co.output_path;
  ASSERT_OK(RunTrainPipeline(p).status());

  // Item 0's image file is replaced; a new item gets item 9's title and a
  // copy of item 9's image.
  write_image(absl::StrCat(f.items[0].key, ".png"), 1000);
  std::vector<ItemTableRow> now = f.items;
  now.push_back({"NEWIMG", f.items[9].value});
  ASSERT_OK(WriteFileAtomically(JoinPath(dir, "images.tsv"),
                                absl::StrCat(table, "NEWIMG\t", f.items[9].key, ".png\n")));
  EmbeddingRefreshOptions o = Options(WriteCatalog("vit.tsv", now), 2);
  o.models_dir = p.models_dir;
  o.cache_out = JoinPath(dir, "text_out.st");
  o.image_cache = co.output_path;
  o.images_table = JoinPath(dir, "images.tsv");
  o.image_cache_out = JoinPath(dir, "image_out.st");
  ASSERT_OK_AND_ASSIGN(EmbeddingRefreshResult r, RunEmbeddingRefresh(o));
  EXPECT_EQ(r.recomputed, 2);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.added, 1);
  EXPECT_EQ(r.image_encoded, 2);
  EXPECT_EQ(r.text_encoded, 1);  // item 0's title did not change
  EXPECT_EQ(r.reused, static_cast<int64_t>(f.items.size()) - 1);
  EXPECT_GT(r.verified, 0);

  ASSERT_OK_AND_ASSIGN(auto parent, ModelVersion::Open(ModelVersionPath(p.models_dir, 1)));
  ASSERT_OK_AND_ASSIGN(auto v, ModelVersion::Open(r.version_dir));
  ASSERT_EQ(v->manifest().network.modalities.size(), 2u);
  ASSERT_OK_AND_ASSIGN(ItemEmbeddings before, parent->ReadItemEmbeddings());
  ASSERT_OK_AND_ASSIGN(ItemEmbeddings after, v->ReadItemEmbeddings());
  auto diff = [&](const float* a, const float* b) {
    double d = 0;
    for (int64_t j = 0; j < after.dim; ++j) d = std::max(d, std::fabs(double(a[j]) - b[j]));
    return d;
  };
  EXPECT_LT(diff(Row(after, "NEWIMG"), Row(before, f.items[9].key)), 1e-4);
  EXPECT_GT(diff(Row(after, f.items[0].key), Row(before, f.items[0].key)), 1e-4);
  EXPECT_EQ(std::memcmp(Row(after, f.items[1].key), Row(before, f.items[1].key),
                        after.dim * sizeof(float)), 0);
  ASSERT_OK_AND_ASSIGN(auto image_out, HiddenStateCache::Open(r.image_cache_out));
  EXPECT_EQ(image_out->num_items(), static_cast<int64_t>(now.size()));

  // An image cache of another ViT (another stand-in seed) is refused.
  ViTImageEncoderOptions other = vo;
  other.seed = 7;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ImageEncoder> vit7, CreateViTImageEncoder(other));
  CacheBuildOptions co7 = co;
  co7.output_path = JoinPath(dir, "image7.st");
  ASSERT_OK(BuildImageCache(images, vit7.get(), co7).status());
  EmbeddingRefreshOptions bad = o;
  bad.version = 3;
  bad.image_cache = co7.output_path;
  EXPECT_THAT(RunEmbeddingRefresh(bad), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                 HasSubstr("spec.refresh.image_cache: its backbone fingerprint")));
  // No images table for a version with an image side.
  bad.image_cache = co.output_path;
  bad.images_table.clear();
  EXPECT_THAT(RunEmbeddingRefresh(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("spec.refresh.images_table")));
}

}  // namespace
}  // namespace recsys
