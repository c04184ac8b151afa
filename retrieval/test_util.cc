#include "retrieval/test_util.h"

#include <cmath>
#include <cstdlib>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/test_paths.h"
#include "gtest/gtest.h"

namespace recsys {
namespace retrieval {

std::vector<float> RandomUnitVectors(int64_t n, int d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n) * d);
  for (int64_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int j = 0; j < d; ++j) {
      v[i * d + j] = g(rng);
      norm += v[i * d + j] * v[i * d + j];
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(norm));
    for (int j = 0; j < d; ++j) v[i * d + j] *= inv;
  }
  return v;
}

std::vector<Entry> MakeEntries(int64_t first, int64_t n, int d, uint32_t seed) {
  std::vector<float> v = RandomUnitVectors(n, d, seed);
  std::vector<Entry> out(n);
  for (int64_t i = 0; i < n; ++i) {
    out[i].key = absl::StrCat("key", first + i);
    out[i].vector.assign(v.begin() + i * d, v.begin() + (i + 1) * d);
    out[i].payload = {{"parity", (first + i) % 2 == 0 ? "even" : "odd"}};
  }
  return out;
}

CollectionConfig TestConfig(const std::string& name, int d,
                            const std::string& factory, Metric metric) {
  CollectionConfig c;
  c.name = name;
  c.dimension = d;
  c.index_factory = factory;
  c.metric = metric;
  return c;
}

std::string FreshTestDir(const std::string& name) {
  std::string dir = TestTempPath(name);
  // A stale directory from an earlier run must not leak into this test.
  if (!RemoveRecursively(dir).ok() || !CreateDirectories(dir).ok()) {
    ADD_FAILURE() << "cannot create the test directory " << dir;
  }
  return dir;
}

}  // namespace retrieval
}  // namespace recsys
