// Helpers for tests of the recommendation server: real model version
// directories written through the trainer's export.
#ifndef RECSYS_SERVER_TEST_UTIL_H_
#define RECSYS_SERVER_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/nn/user_encoder.h"

namespace recsys {

inline constexpr int64_t kTestDim = 8;
inline constexpr int64_t kTestMaxLen = 4;

// Exports model version `number` under `base`: items "a".."e" with random
// embeddings (returned in `embeddings` when non-null) and a user encoder
// seeded with `number` (returned, in eval mode).
UserEncoder ExportTestVersion(const std::string& base, int64_t number,
                              std::vector<float>* embeddings = nullptr);

// A fresh, empty directory under $TEST_TMPDIR.
std::string FreshTestDir(const std::string& name);

}  // namespace recsys

#endif  // RECSYS_SERVER_TEST_UTIL_H_
