#include "trainer/backbone/cache_builder.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/encoders/bert_text_encoder.h"
#include "model/encoders/test_util.h"
#include "model/encoders/vit_image_encoder.h"
#include "model/hidden_state_cache.h"

namespace recsys {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::TempPath;

constexpr int64_t kStates = 3;
constexpr int64_t kHidden = 4;

// A value that depends on the text, the state and the dimension.
float FakeValue(const std::string& text, int64_t s, int64_t d) {
  const uint32_t h = Crc32c(text);
  return static_cast<float>((h % 1000) / 250.0 - 2.0 + 0.1 * s - 0.01 * d);
}

class FakeTextEncoder : public TextEncoder {
 public:
  FakeTextEncoder() {
    info_.name = "fake-text";
    info_.config_json = "{}";
    info_.fingerprint = "f00d";
    info_.standin = true;
    info_.num_states = kStates;
    info_.hidden_size = kHidden;
  }
  const BackboneInfo& info() const override { return info_; }
  absl::StatusOr<std::vector<float>> Encode(
      const std::vector<std::string>& texts) override {
    encoded += texts.size();
    std::vector<float> out;
    for (const auto& t : texts) {
      for (int64_t s = 0; s < kStates; ++s) {
        for (int64_t d = 0; d < kHidden; ++d) out.push_back(FakeValue(t, s, d));
      }
    }
    return out;
  }
  int64_t encoded = 0;

 private:
  BackboneInfo info_;
};

class FakeImageEncoder : public ImageEncoder {
 public:
  FakeImageEncoder() {
    info_.name = "fake-image";
    info_.config_json = "{}";
    info_.fingerprint = "beef";
    info_.num_states = kStates;
    info_.hidden_size = kHidden;
  }
  const BackboneInfo& info() const override { return info_; }
  absl::StatusOr<std::vector<float>> Encode(
      const std::vector<RgbImage>& images) override {
    std::vector<float> out;
    for (const RgbImage& im : images) {
      for (int64_t s = 0; s < kStates; ++s) {
        for (int64_t d = 0; d < kHidden; ++d) {
          out.push_back(im.pixels[0] + im.width * 0.5f + s + d);
        }
      }
    }
    return out;
  }

 private:
  BackboneInfo info_;
};

std::vector<CacheItem> TenItems() {
  std::vector<CacheItem> items;
  for (int i = 0; i < 10; ++i) {
    items.push_back({absl::StrCat("K", i), absl::StrCat("title &amp; number ", i)});
  }
  return items;
}

CacheBuildOptions Options(const std::string& name) {
  CacheBuildOptions o;
  o.output_path = TempPath(name + ".safetensors");
  o.work_dir = TempPath(name + ".work");
  o.chunk_size = 3;
  o.progress_interval = absl::ZeroDuration();
  (void)RemoveRecursively(o.work_dir);
  return o;
}

TEST(CacheBuilderTest, WritesTheTrainerCacheFormatAndReportsFailures) {
  std::vector<CacheItem> items = TenItems();
  items.push_back({"EMPTY", " &nbsp; "});
  items.push_back({"K3", "duplicate"});
  items.push_back({"", "no key"});
  FakeTextEncoder enc;
  CacheBuildOptions o = Options("basic");
  o.extra_metadata["source"] = "unit-test";
  ASSERT_OK_AND_ASSIGN(CacheBuildResult r, BuildTextCache(items, &enc, o));
  EXPECT_EQ(r.items_written, 10);
  EXPECT_EQ(r.items_failed, 3);
  EXPECT_EQ(r.chunks_computed, 4);  // 11 valid keys / 3
  EXPECT_FALSE(PathExists(o.work_dir));

  ASSERT_OK_AND_ASSIGN(auto cache, HiddenStateCache::Open(o.output_path));
  EXPECT_EQ(cache->num_items(), 10);
  EXPECT_EQ(cache->num_states(), kStates);
  EXPECT_EQ(cache->hidden_size(), kHidden);
  EXPECT_EQ(cache->dtype(), DType::kF16);
  EXPECT_EQ(cache->keys()[0], "K0");
  EXPECT_EQ(cache->keys()[9], "K9");
  EXPECT_EQ(cache->info().modality, "text");
  EXPECT_EQ(cache->info().backbone, "fake-text");
  EXPECT_TRUE(cache->info().standin);
  EXPECT_EQ(cache->info().fingerprint, r.fingerprint);
  EXPECT_EQ(cache->info().extra.at("source"), "unit-test");
  EXPECT_EQ(cache->info().extra.at("num_failed"), "3");
  // The backbone alone (not this catalog) and every item's input.
  EXPECT_EQ(cache->info().backbone_fingerprint, "f00d");
  ASSERT_TRUE(cache->has_content_fingerprints());
  EXPECT_EQ(cache->ContentFingerprint(cache->RowOf("K7")), ItemContentFingerprint(items[7].value));
  EXPECT_NE(cache->ContentFingerprint(cache->RowOf("K6")), cache->ContentFingerprint(cache->RowOf("K7")));
  std::vector<float> got(kStates * kHidden);
  ASSERT_OK(cache->Gather({cache->RowOf("K7")}, got.data()));
  for (int64_t s = 0; s < kStates; ++s) {
    for (int64_t d = 0; d < kHidden; ++d) {
      EXPECT_NEAR(got[s * kHidden + d], FakeValue(items[7].value, s, d), 2e-3);
    }
  }
  ASSERT_OK_AND_ASSIGN(std::string report, ReadFileToString(o.output_path + ".failed.tsv"));
  EXPECT_THAT(absl::StrSplit(report, '\n', absl::SkipEmpty()),
              ElementsAre("K3\tduplicate key (first occurrence kept)",
                          "\tempty key", "EMPTY\tempty title"));
}

TEST(CacheBuilderTest, ResumedBuildEqualsUninterruptedBuild) {
  const std::vector<CacheItem> items = TenItems();
  FakeTextEncoder whole_enc;
  CacheBuildOptions whole = Options("whole");
  ASSERT_OK(BuildTextCache(items, &whole_enc, whole).status());

  FakeTextEncoder enc;
  CacheBuildOptions o = Options("resumed");
  o.stop_after_chunks = 2;
  EXPECT_THAT(BuildTextCache(items, &enc, o),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("resume")));
  EXPECT_EQ(enc.encoded, 6);
  EXPECT_FALSE(PathExists(o.output_path));
  o.stop_after_chunks = -1;
  ASSERT_OK_AND_ASSIGN(CacheBuildResult r, BuildTextCache(items, &enc, o));
  EXPECT_EQ(r.chunks_reused, 2);
  EXPECT_EQ(r.chunks_computed, 2);
  EXPECT_EQ(enc.encoded, 10);  // nothing encoded twice

  ASSERT_OK_AND_ASSIGN(std::string a, ReadFileToString(whole.output_path));
  ASSERT_OK_AND_ASSIGN(std::string b, ReadFileToString(o.output_path));
  EXPECT_TRUE(a == b) << "resumed output differs from the uninterrupted one";
}

TEST(CacheBuilderTest, DamagedOrForeignChunksAreRecomputed) {
  const std::vector<CacheItem> items = TenItems();
  FakeTextEncoder enc;
  CacheBuildOptions o = Options("damaged");
  o.stop_after_chunks = 3;
  ASSERT_THAT(BuildTextCache(items, &enc, o), StatusIs(absl::StatusCode::kAborted));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> dirs, ListDirectory(o.work_dir));
  ASSERT_EQ(dirs.size(), 1u);
  const std::string chunk1 =
      JoinPath(JoinPath(o.work_dir, dirs[0]), "chunk-000001.safetensors");
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(chunk1));
  ASSERT_OK(WriteFileAtomically(chunk1, bytes.substr(0, bytes.size() / 2)));
  o.stop_after_chunks = -1;
  ASSERT_OK_AND_ASSIGN(CacheBuildResult r, BuildTextCache(items, &enc, o));
  EXPECT_EQ(r.chunks_reused, 2);
  EXPECT_EQ(r.chunks_computed, 2);

  // A changed title changes the build fingerprint: nothing is reused.
  std::vector<CacheItem> changed = items;
  changed[4].value = "another title";
  o.stop_after_chunks = 1;
  ASSERT_THAT(BuildTextCache(items, &enc, o), StatusIs(absl::StatusCode::kAborted));
  o.stop_after_chunks = -1;
  ASSERT_OK_AND_ASSIGN(r, BuildTextCache(changed, &enc, o));
  EXPECT_EQ(r.chunks_reused, 0);
  ASSERT_OK_AND_ASSIGN(auto cache, HiddenStateCache::Open(o.output_path));
  std::vector<float> got(kStates * kHidden);
  ASSERT_OK(cache->Gather({4}, got.data()));
  EXPECT_NEAR(got[0], FakeValue("another title", 0, 0), 2e-3);
}

TEST(CacheBuilderTest, ImageBuildSkipsMissingAndUndecodableImages) {
  const std::string dir = TempPath("images", /*make_dir=*/true);
  std::vector<CacheItem> items;
  for (int i = 0; i < 4; ++i) {
    RgbImage im;
    im.width = 2 + i;
    im.height = 3;
    im.pixels.assign(im.width * im.height * 3, static_cast<uint8_t>(10 * i));
    ASSERT_OK_AND_ASSIGN(std::string png, EncodePng(im));
    const std::string name = absl::StrCat("img", i, ".png");
    ASSERT_OK(WriteFileAtomically(JoinPath(dir, name), png));
    items.push_back({absl::StrCat("I", i), name});
  }
  ASSERT_OK(WriteFileAtomically(JoinPath(dir, "bad.png"), "not an image"));
  items.push_back({"BAD", "bad.png"});
  items.push_back({"MISSING", "missing.jpg"});
  FakeImageEncoder enc;
  CacheBuildOptions o = Options("image");
  o.image_base_dir = dir;
  o.dtype = DType::kF32;
  o.images_per_batch = 2;
  ASSERT_OK_AND_ASSIGN(CacheBuildResult r, BuildImageCache(items, &enc, o));
  EXPECT_EQ(r.items_written, 4);
  EXPECT_EQ(r.items_failed, 2);
  ASSERT_OK_AND_ASSIGN(auto cache, HiddenStateCache::Open(o.output_path));
  EXPECT_EQ(cache->info().modality, "image");
  EXPECT_FALSE(cache->info().standin);
  std::vector<float> got(kStates * kHidden);
  ASSERT_OK(cache->Gather({cache->RowOf("I3")}, got.data()));
  EXPECT_FLOAT_EQ(got[0], 30 + 5 * 0.5f);
  // An image's content fingerprint is that of its file's bytes.
  ASSERT_OK_AND_ASSIGN(std::string img3, ReadFileToString(JoinPath(dir, "img3.png")));
  EXPECT_EQ(cache->ContentFingerprint(cache->RowOf("I3")), ItemContentFingerprint(img3));
  EXPECT_EQ(cache->info().backbone_fingerprint, "beef");
  ASSERT_OK_AND_ASSIGN(std::string report, ReadFileToString(o.output_path + ".failed.tsv"));
  EXPECT_THAT(report, HasSubstr("BAD\t"));
  EXPECT_THAT(report, HasSubstr("MISSING\t"));
}

// on_progress sees every image batch; a non-OK answer (a job's cancel)
// stops the build with it, and a rerun reuses the chunks already written.
TEST(CacheBuilderTest, ProgressCallbackReportsBatchesAndStopsTheBuild) {
  const std::string dir = TempPath("progress_images", /*make_dir=*/true);
  std::vector<CacheItem> items;
  for (int i = 0; i < 6; ++i) {
    RgbImage im;
    im.width = 2;
    im.height = 2;
    im.pixels.assign(12, static_cast<uint8_t>(20 * i));
    ASSERT_OK_AND_ASSIGN(std::string png, EncodePng(im));
    const std::string name = absl::StrCat("p", i, ".png");
    ASSERT_OK(WriteFileAtomically(JoinPath(dir, name), png));
    items.push_back({absl::StrCat("P", i), name});
  }
  FakeImageEncoder enc;
  CacheBuildOptions o = Options("progress");
  o.image_base_dir = dir;
  o.chunk_size = 4;
  o.images_per_batch = 2;
  std::vector<int64_t> seen;
  o.on_progress = [&seen](int64_t done, int64_t total) -> absl::Status {
    EXPECT_EQ(total, 6);
    seen.push_back(done);
    if (done >= 4) return absl::CancelledError("the job was cancelled");
    return absl::OkStatus();
  };
  EXPECT_THAT(BuildImageCache(items, &enc, o).status(),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_EQ(seen, (std::vector<int64_t>{2, 4}));
  EXPECT_FALSE(PathExists(o.output_path));
  seen.clear();
  o.on_progress = [&seen](int64_t done, int64_t) {
    seen.push_back(done);
    return absl::OkStatus();
  };
  ASSERT_OK_AND_ASSIGN(CacheBuildResult r, BuildImageCache(items, &enc, o));
  EXPECT_EQ(r.chunks_reused, 1);
  EXPECT_EQ(r.chunks_computed, 1);
  EXPECT_EQ(r.items_written, 6);
  EXPECT_EQ(seen, (std::vector<int64_t>{4, 6}));
}

// Synthetic PNG/missing images through the real (stand-in) ViT.
TEST(CacheBuilderTest, SyntheticImagesWithStandinViT) {
  const std::string dir = TempPath("vit_images", /*make_dir=*/true);
  std::vector<CacheItem> items;
  for (int i = 0; i < 5; ++i) {
    RgbImage im;
    im.width = 24 + 8 * i;
    im.height = 40 - 4 * i;
    for (int p = 0; p < im.width * im.height * 3; ++p) {
      im.pixels.push_back(static_cast<uint8_t>((p * (3 + i)) % 256));
    }
    ASSERT_OK_AND_ASSIGN(std::string png, EncodePng(im));
    ASSERT_OK(WriteFileAtomically(JoinPath(dir, absl::StrCat(i, ".png")), png));
    items.push_back({absl::StrCat("P", i), absl::StrCat(i, ".png")});
  }
  items.push_back({"GONE", "gone.png"});
  ViTImageEncoderOptions eo;
  eo.config.hidden_size = 32;
  eo.config.num_hidden_layers = 2;
  eo.config.num_attention_heads = 2;
  eo.config.intermediate_size = 64;
  eo.config.image_size = 32;
  eo.config.patch_size = 8;
  ASSERT_OK_AND_ASSIGN(auto enc, CreateViTImageEncoder(eo));
  CacheBuildOptions o = Options("vit");
  o.image_base_dir = dir;
  o.images_per_batch = 2;
  ASSERT_OK_AND_ASSIGN(CacheBuildResult r, BuildImageCache(items, enc.get(), o));
  EXPECT_EQ(r.items_written, 5);
  EXPECT_EQ(r.items_failed, 1);
  ASSERT_OK_AND_ASSIGN(auto cache, HiddenStateCache::Open(o.output_path));
  EXPECT_EQ(cache->info().modality, "image");
  EXPECT_EQ(cache->info().backbone, "vit-standin-2x32-p8-32");
  EXPECT_TRUE(cache->info().standin);
  EXPECT_EQ(cache->num_states(), 3);
  EXPECT_EQ(cache->RowOf("GONE"), -1);
  std::vector<float> a(3 * 32), b(3 * 32);
  ASSERT_OK(cache->Gather({0}, a.data()));
  ASSERT_OK(cache->Gather({1}, b.data()));
  float diff = 0;
  for (int j = 64; j < 96; ++j) diff += std::fabs(a[j] - b[j]);
  EXPECT_GT(diff, 1e-3);  // different images, different final states
}

// The real catalog through the real (stand-in) BERT: a few hundred items to
// stay fast; the full run is the build_cache binary's job.
TEST(CacheBuilderTest, RealItemsWithStandinBert) {
  const std::string data = testing_util::DataDir();
  const std::string items_path = JoinPath(data, "amazon-scientific/items.tsv");
  const std::string vocab = JoinPath(data, "bert-base-uncased/vocab.txt");
  if (data.empty() || !PathExists(items_path) || !PathExists(vocab)) {
    GTEST_SKIP() << "RECSYS_DATA_DIR unset or lacks amazon-scientific/items.tsv "
                    "and bert-base-uncased/vocab.txt";
  }
  ASSERT_OK_AND_ASSIGN(std::vector<CacheItem> items, ReadItemTable(items_path));
  ASSERT_EQ(items.size(), 20825u);
  items.resize(300);
  BertTextEncoderOptions eo;
  eo.vocab_path = vocab;
  eo.config.num_hidden_layers = 2;
  eo.config.hidden_size = 64;
  eo.config.num_attention_heads = 4;
  eo.config.intermediate_size = 128;
  ASSERT_OK_AND_ASSIGN(auto enc, CreateBertTextEncoder(eo));
  CacheBuildOptions o = Options("real");
  o.chunk_size = 128;
  ASSERT_OK_AND_ASSIGN(CacheBuildResult r, BuildTextCache(items, enc.get(), o));
  EXPECT_EQ(r.items_written + r.items_failed, 300);
  ASSERT_OK_AND_ASSIGN(auto file, SafetensorsFile::Open(o.output_path));
  ASSERT_OK_AND_ASSIGN(TensorView states, file->Get("hidden_states"));
  EXPECT_EQ(states.shape, (std::vector<int64_t>{r.items_written, 3, 64}));
  ASSERT_OK_AND_ASSIGN(auto cache, HiddenStateCache::Open(o.output_path));
  EXPECT_EQ(cache->keys()[0], items[0].key);
  EXPECT_EQ(cache->info().backbone, "bert-standin-2x64");
  EXPECT_TRUE(cache->info().standin);
  EXPECT_EQ(file->metadata().at("standin"), "true");
  std::vector<float> row(3 * 64);
  ASSERT_OK(cache->Gather({299 - r.items_failed}, row.data()));
  for (float v : row) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace recsys
