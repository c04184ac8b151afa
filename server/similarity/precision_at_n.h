// Retrieval quality figures of the content-based image retrieval paper
// ("Leveraging foundation models for content-based medical image retrieval
// in radiology", 2024), and recall of an approximate search against an exact
// one. Pure C++ (no LibTorch, no FAISS), so the evaluation command, the
// service and the tests share one definition.
//
// P@N for one query: the fraction of its first n results whose label equals
// the query's, with n = min(N, number of index entries of the query's
// class). A query whose class has no index entries has no defined P@N: it is
// left out and counted in `skipped_queries`. Results shorter than n count
// the missing places as misses. Micro: mean over queries; macro: mean over
// classes (classes that have at least one evaluated query) of the class's
// mean over its queries.
//
// Thread-safety: pure functions.
#ifndef RECSYS_SERVER_SIMILARITY_PRECISION_AT_N_H_
#define RECSYS_SERVER_SIMILARITY_PRECISION_AT_N_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace recsys {
namespace similarity {

struct PrecisionAtNOptions {
  // The cut-offs to report, each >= 1.
  std::vector<int> ns = {1, 3, 5, 10};
};

struct PrecisionAtNReport {
  std::vector<int> ns;
  std::vector<double> micro;  // micro[i] is micro P@ns[i]
  std::vector<double> macro;  // macro[i] is macro P@ns[i]
  int64_t evaluated_queries = 0;
  int64_t skipped_queries = 0;  // class absent from the index
  int64_t evaluated_classes = 0;
};

// `query_labels[q]` is query q's class; `result_labels[q]` the classes of
// its results, best first; `index_class_counts` the number of index entries
// per class. INVALID_ARGUMENT when the sizes differ, an N is < 1, a count is
// negative, or no query can be evaluated.
absl::StatusOr<PrecisionAtNReport> ComputePrecisionAtN(
    const std::vector<std::string>& query_labels,
    const std::vector<std::vector<std::string>>& result_labels,
    const std::map<std::string, int64_t>& index_class_counts,
    const PrecisionAtNOptions& options = {});

// Counts of each label, for `index_class_counts`.
std::map<std::string, int64_t> CountLabels(
    const std::vector<std::string>& labels);

// Mean over queries of |approximate[q][:k] & exact[q][:k]| / min(k,
// |exact[q]|), keys compared as strings; queries with no exact results are
// left out. INVALID_ARGUMENT when the sizes differ, k < 1, or no query has
// exact results.
absl::StatusOr<double> RecallAtK(
    const std::vector<std::vector<std::string>>& approximate,
    const std::vector<std::vector<std::string>>& exact, int k);

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_PRECISION_AT_N_H_
