// The few-shot translation prompt: selected examples and the sentence to
// translate rendered through a configurable template, the most similar
// example last, nearest the query (the order the in-context example
// selection paper uses).
//
// Two templates, each parsed once by Create:
//   prompt   must contain {examples} and {source} exactly once each (the
//            rendered examples, then the sentence to translate); may use
//            {source_language} and {target_language}.
//   example  rendered once per example; must contain {source} and {target};
//            may use {source_language}, {target_language}.
// "{{" and "}}" are literal braces. Any other placeholder, or an unmatched
// brace, is INVALID_ARGUMENT naming it. Substituted text is never parsed
// again, so braces in sentences are safe.
//
// Thread-safety: immutable after Create; Render from any number of threads.
#ifndef RECSYS_SERVER_SIMILARITY_PROMPT_TEMPLATE_H_
#define RECSYS_SERVER_SIMILARITY_PROMPT_TEMPLATE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys {
namespace similarity {

struct FewShotExample {
  std::string source;
  std::string target;
};

struct PromptTemplateOptions {
  std::string prompt =
      "Translate the following sentences from {source_language} to "
      "{target_language}.\n\n{examples}{source_language}: {source}\n"
      "{target_language}:";
  std::string example =
      "{source_language}: {source}\n{target_language}: {target}\n\n";
  std::string source_language = "English";
  std::string target_language = "Spanish";
  // Render refuses prompts longer than this.
  int64_t max_prompt_bytes = 1 << 20;
};

class PromptTemplate {
 public:
  // INVALID_ARGUMENT when a template is malformed (see above).
  static absl::StatusOr<std::unique_ptr<PromptTemplate>> Create(
      const PromptTemplateOptions& options);

  // `examples` most similar first (as search returns them); they are
  // rendered in the reverse order. INVALID_ARGUMENT when the prompt would
  // exceed max_prompt_bytes.
  absl::StatusOr<std::string> Render(
      absl::string_view source,
      const std::vector<FewShotExample>& examples) const;

 private:
  struct Segment {
    bool field = false;
    std::string text;  // literal text, or the field name
  };
  PromptTemplate() = default;

  PromptTemplateOptions options_;
  std::vector<Segment> prompt_;
  std::vector<Segment> example_;
};

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_PROMPT_TEMPLATE_H_
