#include "server/similarity/prompt_template.h"

#include <map>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/user_input.h"

namespace recsys {
namespace similarity {
namespace {

template <typename Segment>
absl::Status Parse(absl::string_view what, absl::string_view text,
                   const std::set<std::string>& allowed,
                   const std::set<std::string>& required_once,
                   std::vector<Segment>* out) {
  std::map<std::string, int> counts;
  std::string literal;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if ((c == '{' || c == '}') && i + 1 < text.size() && text[i + 1] == c) {
      literal.push_back(c);
      ++i;
      continue;
    }
    if (c == '}') {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " template: unmatched '}' at byte ", i,
          " (write }} for a literal brace)"));
    }
    if (c != '{') {
      literal.push_back(c);
      continue;
    }
    const size_t close = text.find('}', i);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " template: unmatched '{' at byte ", i,
          " (write {{ for a literal brace)"));
    }
    const std::string name(text.substr(i + 1, close - i - 1));
    if (allowed.count(name) == 0) {
      std::string names;
      for (const std::string& a : allowed) absl::StrAppend(&names, " {", a, "}");
      return absl::InvalidArgumentError(
          absl::StrCat(what, " template: unknown placeholder ",
                       QuoteUserInput(name), "; expected one of", names));
    }
    if (!literal.empty()) out->push_back({false, std::move(literal)});
    literal.clear();
    out->push_back({true, name});
    ++counts[name];
    i = close;
  }
  if (!literal.empty()) out->push_back({false, std::move(literal)});
  for (const std::string& r : required_once) {
    if (counts[r] != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " template: {", r, "} must appear exactly once, "
                       "found ", counts[r], " times"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<PromptTemplate>> PromptTemplate::Create(
    const PromptTemplateOptions& options) {
  auto t = std::unique_ptr<PromptTemplate>(new PromptTemplate());
  t->options_ = options;
  RETURN_IF_ERROR(Parse("prompt", options.prompt,
                        {"examples", "source", "source_language",
                         "target_language"},
                        {"examples", "source"}, &t->prompt_));
  RETURN_IF_ERROR(Parse("example", options.example,
                        {"source", "target", "source_language",
                         "target_language"},
                        {"source", "target"}, &t->example_));
  if (options.max_prompt_bytes < 1) {
    return absl::InvalidArgumentError("max_prompt_bytes: expected >= 1");
  }
  return t;
}

absl::StatusOr<std::string> PromptTemplate::Render(
    absl::string_view source,
    const std::vector<FewShotExample>& examples) const {
  auto value = [&](const std::string& field, absl::string_view src,
                   absl::string_view tgt) -> absl::string_view {
    if (field == "source") return src;
    if (field == "target") return tgt;
    if (field == "source_language") return options_.source_language;
    return options_.target_language;  // "target_language"
  };
  std::string rendered_examples;
  for (auto it = examples.rbegin(); it != examples.rend(); ++it) {
    for (const Segment& s : example_) {
      absl::StrAppend(&rendered_examples,
                      s.field ? value(s.text, it->source, it->target) : s.text);
    }
    if (static_cast<int64_t>(rendered_examples.size()) >
        options_.max_prompt_bytes) {
      break;
    }
  }
  std::string out;
  for (const Segment& s : prompt_) {
    if (!s.field) {
      out += s.text;
    } else if (s.text == "examples") {
      out += rendered_examples;
    } else {
      absl::StrAppend(&out, value(s.text, source, ""));
    }
  }
  if (static_cast<int64_t>(out.size()) > options_.max_prompt_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: more than max_prompt_bytes = ",
                     options_.max_prompt_bytes, " bytes"));
  }
  return out;
}

}  // namespace similarity
}  // namespace recsys
