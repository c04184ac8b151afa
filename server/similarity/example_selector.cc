#include "server/similarity/example_selector.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace recsys {
namespace similarity {
namespace {

absl::Status CheckUnitRange(const std::optional<float>& v,
                            absl::string_view name) {
  if (v.has_value() && !(*v >= -1 && *v <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": expected -1..1, got ", *v));
  }
  return absl::OkStatus();
}

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

}  // namespace

absl::Status ValidateExampleSelectionOptions(const ExampleSelectionOptions& o) {
  if (o.k < 1 || o.k > 20) {
    return absl::InvalidArgumentError(
        absl::StrCat("k: expected 1..20, got ", o.k));
  }
  RETURN_IF_ERROR(CheckUnitRange(o.min_similarity, "min_similarity"));
  RETURN_IF_ERROR(CheckUnitRange(o.diversity_threshold, "diversity_threshold"));
  // An infinite bound had been taken: +inf dropped every example of a known
  // quality, -inf none.
  if (o.min_quality.has_value() && !std::isfinite(*o.min_quality)) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_quality: expected a finite number, got ", *o.min_quality));
  }
  return absl::OkStatus();
}

int CandidatesToFetch(const ExampleSelectionOptions& o) {
  const bool filtered = o.min_similarity.has_value() ||
                        o.diversity_threshold.has_value() ||
                        o.min_quality.has_value();
  return filtered ? std::min(100, 5 * o.k) : o.k;
}

absl::StatusOr<std::vector<size_t>> SelectExamples(
    const std::vector<ExampleCandidate>& candidates,
    const ExampleSelectionOptions& o) {
  RETURN_IF_ERROR(ValidateExampleSelectionOptions(o));
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (std::isnan(candidates[i].score)) {
      return absl::InvalidArgumentError(
          absl::StrCat("candidates[", i, "]: score is NaN"));
    }
    if (o.diversity_threshold.has_value() &&
        (candidates[i].vector.empty() ||
         candidates[i].vector.size() != candidates[0].vector.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "candidates[", i, "]: a diversity threshold needs every candidate's "
          "vector, all of one length"));
    }
  }
  std::vector<size_t> order(candidates.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return candidates[a].score > candidates[b].score;
  });
  std::vector<size_t> chosen;
  for (size_t i : order) {
    if (static_cast<int>(chosen.size()) == o.k) break;
    const ExampleCandidate& c = candidates[i];
    if (o.min_similarity.has_value() && c.score < *o.min_similarity) break;
    if (o.min_quality.has_value() && c.quality.has_value() &&
        !(*c.quality >= *o.min_quality)) {
      continue;
    }
    if (o.diversity_threshold.has_value() &&
        std::any_of(chosen.begin(), chosen.end(), [&](size_t j) {
          return Dot(c.vector, candidates[j].vector) >= *o.diversity_threshold;
        })) {
      continue;
    }
    chosen.push_back(i);
  }
  return chosen;
}

}  // namespace similarity
}  // namespace recsys
