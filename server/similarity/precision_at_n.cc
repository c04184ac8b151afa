#include "server/similarity/precision_at_n.h"

#include <algorithm>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace recsys {
namespace similarity {

absl::StatusOr<PrecisionAtNReport> ComputePrecisionAtN(
    const std::vector<std::string>& query_labels,
    const std::vector<std::vector<std::string>>& result_labels,
    const std::map<std::string, int64_t>& index_class_counts,
    const PrecisionAtNOptions& options) {
  if (query_labels.size() != result_labels.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("query_labels has ", query_labels.size(),
                     " entries but result_labels has ", result_labels.size()));
  }
  if (options.ns.empty()) {
    return absl::InvalidArgumentError("ns: expected at least one N");
  }
  for (int n : options.ns) {
    if (n < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("ns: expected every N >= 1, got ", n));
    }
  }
  for (const auto& [label, count] : index_class_counts) {
    if (count < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("index_class_counts: negative count ", count));
    }
  }
  const size_t num_ns = options.ns.size();
  PrecisionAtNReport report;
  report.ns = options.ns;
  std::vector<double> micro_sum(num_ns, 0.0);
  // Per class: sum of per-query precision per N, and the number of queries.
  std::map<std::string, std::pair<std::vector<double>, int64_t>> per_class;
  for (size_t q = 0; q < query_labels.size(); ++q) {
    const std::string& label = query_labels[q];
    auto it = index_class_counts.find(label);
    const int64_t in_index = it == index_class_counts.end() ? 0 : it->second;
    if (in_index == 0) {
      ++report.skipped_queries;
      continue;
    }
    ++report.evaluated_queries;
    auto& [sums, count] = per_class[label];
    if (sums.empty()) sums.assign(num_ns, 0.0);
    ++count;
    const std::vector<std::string>& results = result_labels[q];
    for (size_t i = 0; i < num_ns; ++i) {
      const int64_t n = std::min<int64_t>(options.ns[i], in_index);
      const int64_t upto = std::min<int64_t>(n, results.size());
      int64_t hits = 0;
      for (int64_t r = 0; r < upto; ++r) hits += results[r] == label;
      const double p = static_cast<double>(hits) / static_cast<double>(n);
      micro_sum[i] += p;
      sums[i] += p;
    }
  }
  if (report.evaluated_queries == 0) {
    return absl::InvalidArgumentError(
        "no query has a class that occurs in the index");
  }
  report.evaluated_classes = static_cast<int64_t>(per_class.size());
  report.micro.resize(num_ns);
  report.macro.assign(num_ns, 0.0);
  for (size_t i = 0; i < num_ns; ++i) {
    report.micro[i] = micro_sum[i] / report.evaluated_queries;
    for (const auto& [label, entry] : per_class) {
      report.macro[i] += entry.first[i] / entry.second;
    }
    report.macro[i] /= report.evaluated_classes;
  }
  return report;
}

std::map<std::string, int64_t> CountLabels(
    const std::vector<std::string>& labels) {
  std::map<std::string, int64_t> counts;
  for (const std::string& label : labels) ++counts[label];
  return counts;
}

absl::StatusOr<double> RecallAtK(
    const std::vector<std::vector<std::string>>& approximate,
    const std::vector<std::vector<std::string>>& exact, int k) {
  if (approximate.size() != exact.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("approximate has ", approximate.size(),
                     " queries but exact has ", exact.size()));
  }
  if (k < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("k: expected >= 1, got ", k));
  }
  double sum = 0;
  int64_t evaluated = 0;
  for (size_t q = 0; q < exact.size(); ++q) {
    const size_t n = std::min<size_t>(k, exact[q].size());
    if (n == 0) continue;
    const std::set<std::string> truth(exact[q].begin(), exact[q].begin() + n);
    std::set<std::string> found;
    const size_t upto = std::min<size_t>(k, approximate[q].size());
    for (size_t r = 0; r < upto; ++r) {
      if (truth.count(approximate[q][r]) > 0) found.insert(approximate[q][r]);
    }
    sum += static_cast<double>(found.size()) / static_cast<double>(n);
    ++evaluated;
  }
  if (evaluated == 0) {
    return absl::InvalidArgumentError("no query has exact results");
  }
  return sum / evaluated;
}

}  // namespace similarity
}  // namespace recsys
