// Chooses the few-shot examples among search candidates: the k most similar
// that pass a similarity cut-off and a quality floor, skipping candidates
// nearly identical to one already chosen (the diversity threshold, after
// the pool quality vs diversity study of Zebaze, Sagot, Bawden 2024).
// Pure logic on what the retrieval search returned; no I/O.
//
// Thread-safety: pure functions.
#ifndef RECSYS_SERVER_SIMILARITY_EXAMPLE_SELECTOR_H_
#define RECSYS_SERVER_SIMILARITY_EXAMPLE_SELECTOR_H_

#include <cstddef>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"

namespace recsys {
namespace similarity {

struct ExampleCandidate {
  float score = 0;                // cosine similarity to the query
  std::optional<float> quality;   // unknown when absent
  // The candidate's L2-normalised source embedding; needed only with a
  // diversity threshold.
  std::vector<float> vector;
};

struct ExampleSelectionOptions {
  // Examples wanted, 1..20.
  int k = 4;
  // Candidates scoring below this are dropped; -1..1.
  std::optional<float> min_similarity;
  // A candidate whose cosine with an already chosen one is >= this is a
  // near duplicate and skipped; -1..1.
  std::optional<float> diversity_threshold;
  // Candidates with a known quality below this are dropped (unknown
  // quality passes).
  std::optional<float> min_quality;
};

// INVALID_ARGUMENT naming the field.
absl::Status ValidateExampleSelectionOptions(const ExampleSelectionOptions& o);

// How many candidates to ask the search for, so that the filters still
// leave k: k without filters, 5k (at most 100) with any.
int CandidatesToFetch(const ExampleSelectionOptions& o);

// Indices into `candidates` of the chosen examples, most similar first (ties
// keep the candidates' order). INVALID_ARGUMENT for bad options, a NaN
// score, or (with a diversity threshold) vectors of unequal or zero length.
absl::StatusOr<std::vector<size_t>> SelectExamples(
    const std::vector<ExampleCandidate>& candidates,
    const ExampleSelectionOptions& options);

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_EXAMPLE_SELECTOR_H_
