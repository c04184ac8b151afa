#include "server/similarity/prompt_template.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace similarity {
namespace {

using ::testing::HasSubstr;

TEST(PromptTemplateTest, DefaultPutsTheMostSimilarExampleNextToTheQuery) {
  ASSERT_OK_AND_ASSIGN(auto t, PromptTemplate::Create({}));
  ASSERT_OK_AND_ASSIGN(
      std::string p,
      t->Render("And God said", {{"God said, Let there be light", "Y dijo Dios: Sea la luz"},
                                 {"And the earth was void", "Y la tierra estaba vacía"}}));
  EXPECT_EQ(p,
            "Translate the following sentences from English to Spanish.\n\n"
            "English: And the earth was void\nSpanish: Y la tierra estaba vacía\n\n"
            "English: God said, Let there be light\nSpanish: Y dijo Dios: Sea la luz\n\n"
            "English: And God said\nSpanish:");
}

TEST(PromptTemplateTest, CustomTemplatesEscapesAndNoReparsingOfInput) {
  PromptTemplateOptions o;
  o.prompt = "{{json}} {examples}=> {source} ({target_language})";
  o.example = "[{source}|{target}] ";
  o.target_language = "fr";
  ASSERT_OK_AND_ASSIGN(auto t, PromptTemplate::Create(o));
  ASSERT_OK_AND_ASSIGN(std::string p,
                       t->Render("a {source} b", {{"1", "un"}, {"2", "deux"}}));
  EXPECT_EQ(p, "{json} [2|deux] [1|un] => a {source} b (fr)");
  ASSERT_OK_AND_ASSIGN(std::string none, t->Render("x", {}));
  EXPECT_EQ(none, "{json} => x (fr)");
}

TEST(PromptTemplateTest, ValidatesTemplates) {
  PromptTemplateOptions o;
  o.prompt = "{examples} {source} {sourse}";
  EXPECT_THAT(PromptTemplate::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown placeholder 'sourse'")));
  o.prompt = "{examples} no query";
  EXPECT_THAT(PromptTemplate::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("{source} must appear exactly once, found 0")));
  o.prompt = "{examples}{examples}{source}";
  EXPECT_THAT(PromptTemplate::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("found 2 times")));
  o.prompt = "{examples} {source";
  EXPECT_THAT(PromptTemplate::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unmatched '{'")));
  o.prompt = "{examples} {source} }";
  EXPECT_THAT(PromptTemplate::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unmatched '}'")));
  o = {};
  o.example = "{source} only";
  EXPECT_THAT(PromptTemplate::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("example template: {target}")));
  o = {};
  o.prompt = "{examples}{source}{target}";  // {target} has no meaning here
  EXPECT_THAT(PromptTemplate::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown placeholder")));
}

TEST(PromptTemplateTest, RefusesOversizedPrompts) {
  PromptTemplateOptions o;
  o.max_prompt_bytes = 100;
  ASSERT_OK_AND_ASSIGN(auto t, PromptTemplate::Create(o));
  EXPECT_OK(t->Render("short", {}).status());
  EXPECT_THAT(t->Render("short", {{std::string(200, 'a'), "b"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_prompt_bytes = 100")));
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
