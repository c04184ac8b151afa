#include "server/similarity/parallel_corpus.h"

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace similarity {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Shapes seen in diatheke 1.9's plain output for these modules.
constexpr char kKjvOutput[] =
    "A Psalm of David, when he fled from Absalom his son.\n"
    "   Psalms 3:1: LORD, how are they increased that trouble me! \n"
    "\n"
    "   Psalms 3:2: Many there be which say of my soul: There is no help. \n"
    "I Samuel 23:29: \n"
    "Song of Solomon 1:1: \xC2\xB6 The song of songs, which is Solomon's.\n"
    "Ruth 1:7: y comenzaron \xC3\xA1 caminar <H1870> para  volverse <a b>\n"
    "Selah: not a verse\n"
    "(engKJV2006eb)\n";

TEST(ParallelCorpusTest, ParsesVersesAndSkipsHeadings) {
  const std::vector<Verse> v = ParseDiathekePlain(kKjvOutput);
  ASSERT_EQ(v.size(), 5u);
  EXPECT_EQ(v[0].reference, "Psalms 3:1");
  EXPECT_EQ(v[0].text, "LORD, how are they increased that trouble me!");
  EXPECT_EQ(v[1].text, "Many there be which say of my soul: There is no help.");
  EXPECT_EQ(v[2].reference, "I Samuel 23:29");
  EXPECT_THAT(v[2].text, IsEmpty());
  EXPECT_EQ(v[3].reference, "Song of Solomon 1:1");
  EXPECT_EQ(v[3].text, "The song of songs, which is Solomon's.");
  EXPECT_EQ(v[4].text, "y comenzaron \xC3\xA1 caminar para volverse <a b>");
}

TEST(ParallelCorpusTest, AlignsByReferenceAndDropsEmptyOrMissing) {
  const std::vector<Verse> en = {
      {"Ruth 1:1", "Now it came to pass"}, {"Ruth 1:2", ""}, {"Ruth 1:3", "x"}};
  const std::vector<Verse> es = {
      {"Ruth 1:2", "Y el nombre"}, {"Ruth 1:1", "Y aconteció"}};
  const auto pairs = AlignVerses(en, es, "en-es");
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].key, "Ruth 1:1");
  EXPECT_EQ(pairs[0].source, "Now it came to pass");
  EXPECT_EQ(pairs[0].target, "Y aconteció");
  EXPECT_EQ(pairs[0].pair, "en-es");
  EXPECT_FALSE(pairs[0].quality.has_value());
}

class DiathekeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto modules = ListDiathekeModules();
    if (!modules.ok()) GTEST_SKIP() << modules.status();
    for (const char* m : {"engKJV2006eb", "spaRV1909eb"}) {
      if (std::find(modules->begin(), modules->end(), m) == modules->end()) {
        GTEST_SKIP() << m << " not installed: apt-get install sword-text-kjv "
                     << "sword-text-sparv";
      }
    }
  }
};

TEST_F(DiathekeTest, ReadsTheBookOfRuthInEnglishAndSpanish) {
  DiathekeCorpusOptions o;
  o.range = "Ruth 1:1-Ruth 4:22";
  ASSERT_OK_AND_ASSIGN(auto pairs, ReadDiathekeParallelCorpus(o));
  ASSERT_EQ(pairs.size(), 85u);  // Ruth has 22 + 23 + 18 + 22 verses
  const auto it = std::find_if(pairs.begin(), pairs.end(),
                               [](const TranslationPair& p) {
                                 return p.key == "Ruth 1:16";
                               });
  ASSERT_NE(it, pairs.end());
  EXPECT_THAT(it->source, HasSubstr("whither thou goest, I will go"));
  EXPECT_THAT(it->target, HasSubstr("donde quiera que tú fueres, iré yo"));
  EXPECT_EQ(pairs.front().key, "Ruth 1:1");
  EXPECT_EQ(pairs.back().key, "Ruth 4:22");
  // No markup survives the plain filter.
  for (const auto& p : pairs) {
    EXPECT_EQ(p.source.find('<'), std::string::npos) << p.key;
    EXPECT_EQ(p.target.find('<'), std::string::npos) << p.key;
  }
}

TEST_F(DiathekeTest, RefusesMissingModulesAndEmptyRanges) {
  DiathekeCorpusOptions o;
  o.range = "Ruth 1:1";
  o.target_module = "NoSuchModule";
  EXPECT_THAT(ReadDiathekeParallelCorpus(o),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("NoSuchModule")));
  o = {};
  o.range = "Nonsense 99:99";
  EXPECT_THAT(ReadDiathekeParallelCorpus(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no verses")));
  o = {};
  o.diatheke = "/nonexistent/diatheke";
  EXPECT_THAT(ReadDiathekeParallelCorpus(o),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("diatheke")));
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
