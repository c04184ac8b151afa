// Test helpers for retrieval: deterministic random vectors and entries.
#ifndef RECSYS_RETRIEVAL_TEST_UTIL_H_
#define RECSYS_RETRIEVAL_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "retrieval/collection_config.h"

namespace recsys {
namespace retrieval {

// n x d row-major unit vectors from `seed`.
std::vector<float> RandomUnitVectors(int64_t n, int d, uint32_t seed);

// Entries "key<i>" (i in [first, first + n)) with unit vectors and payload
// {"parity": "even"|"odd"}.
std::vector<Entry> MakeEntries(int64_t first, int64_t n, int d, uint32_t seed);

CollectionConfig TestConfig(const std::string& name, int d,
                            const std::string& factory = "Flat",
                            Metric metric = Metric::kInnerProduct);

// $TEST_TMPDIR/<name>, freshly created and empty.
std::string FreshTestDir(const std::string& name);

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_TEST_UTIL_H_
