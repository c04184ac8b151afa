#include "server/similarity/precision_at_n.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace similarity {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(PrecisionAtNTest, HandComputedCase) {
  // Index: 5 x "a", 1 x "b" (so a "b" query has n = 1 for every N).
  const std::map<std::string, int64_t> counts = {{"a", 5}, {"b", 1}};
  const std::vector<std::string> queries = {"a", "a", "a", "b", "b"};
  const std::vector<std::vector<std::string>> results = {
      {"a", "b", "a", "a", "a"},  // P@1 1, P@3 2/3, P@5 4/5
      {"b", "a", "b", "a"},       // P@1 0, P@3 1/3, P@5 2/5 (4 results)
      {"a", "a", "a"},            // P@1 1, P@3 1,   P@5 3/5
      {"a", "b", "a", "a"},       // n = 1: 0, 0, 0
      {"b", "a", "a"},            // n = 1: 1, 1, 1
  };
  ASSERT_OK_AND_ASSIGN(PrecisionAtNReport r,
                       ComputePrecisionAtN(queries, results, counts,
                                           {.ns = {1, 3, 5}}));
  EXPECT_EQ(r.evaluated_queries, 5);
  EXPECT_EQ(r.evaluated_classes, 2);
  EXPECT_EQ(r.skipped_queries, 0);
  EXPECT_THAT(r.micro, ElementsAre(DoubleNear(3.0 / 5, 1e-12),
                                   DoubleNear(3.0 / 5, 1e-12),
                                   DoubleNear(0.56, 1e-12)));
  // Macro: (mean over the a queries + mean over the b queries) / 2.
  EXPECT_THAT(r.macro, ElementsAre(DoubleNear(7.0 / 12, 1e-12),
                                   DoubleNear(7.0 / 12, 1e-12),
                                   DoubleNear(0.55, 1e-12)));
}

TEST(PrecisionAtNTest, ShortResultsCountAsMissesAndAbsentClassesAreSkipped) {
  const std::map<std::string, int64_t> counts = {{"a", 10}};
  ASSERT_OK_AND_ASSIGN(
      PrecisionAtNReport r,
      ComputePrecisionAtN({"a", "zzz"}, {{"a", "a"}, {"a"}}, counts,
                          {.ns = {1, 5}}));
  EXPECT_EQ(r.skipped_queries, 1);
  EXPECT_EQ(r.evaluated_queries, 1);
  EXPECT_THAT(r.micro, ElementsAre(DoubleNear(1.0, 1e-12),
                                   DoubleNear(0.4, 1e-12)));
}

TEST(PrecisionAtNTest, RejectsBadInput) {
  EXPECT_THAT(ComputePrecisionAtN({"a"}, {}, {{"a", 1}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("result_labels")));
  EXPECT_THAT(ComputePrecisionAtN({"a"}, {{"a"}}, {{"a", 1}}, {.ns = {0}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(">= 1")));
  EXPECT_THAT(ComputePrecisionAtN({"a"}, {{"a"}}, {{"b", 1}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no query")));
}

TEST(RecallAtKTest, HandComputed) {
  ASSERT_OK_AND_ASSIGN(
      double recall,
      RecallAtK({{"1", "2", "9"}, {"5"}, {"x"}}, {{"1", "2", "3"}, {"5", "6"}, {}},
                2));
  // Query 0: {1,2} vs {1,2}: 1. Query 1: {5} vs {5,6}: 0.5. Query 2 skipped.
  EXPECT_DOUBLE_EQ(recall, 0.75);
  EXPECT_THAT(RecallAtK({{"1"}}, {{"1"}}, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PrecisionAtNTest, CountLabels) {
  EXPECT_THAT(CountLabels({"b", "a", "b"}),
              ElementsAre(std::pair<const std::string, int64_t>("a", 1),
                          std::pair<const std::string, int64_t>("b", 2)));
}

std::string RunfilePath(const std::string& relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", ws ? ws : "recsys", "/",
                      relative);
}

TEST(PrecisionAtNTest, MatchesNumpyOnRandomCase) {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "no /usr/bin/python3 with numpy";
  }
  std::mt19937 rng(14);
  const std::vector<std::string> classes = {"c0", "c1", "c2", "c3", "c4"};
  // c4 is never indexed; c3 has only 2 entries, so n = min(N, 2) matters.
  std::map<std::string, int64_t> counts = {
      {"c0", 30}, {"c1", 12}, {"c2", 7}, {"c3", 2}};
  std::vector<std::string> queries;
  std::vector<std::vector<std::string>> results, exact, approx;
  std::ostringstream in;
  in << "ns 1 3 5 10\n";
  for (const auto& [label, count] : counts) {
    in << "count " << label << " " << count << "\n";
  }
  for (int q = 0; q < 60; ++q) {
    queries.push_back(classes[rng() % classes.size()]);
    std::vector<std::string> res(rng() % 12);  // 0..11 results
    for (auto& r : res) r = classes[rng() % 4];
    in << "query " << queries.back() << " " << absl::StrJoin(res, " ") << "\n";
    results.push_back(res);
    std::vector<std::string> ex, ap;
    for (int i = 0; i < static_cast<int>(rng() % 12); ++i) {
      ex.push_back(absl::StrCat("k", rng() % 40));
    }
    std::sort(ex.begin(), ex.end());
    ex.erase(std::unique(ex.begin(), ex.end()), ex.end());
    std::shuffle(ex.begin(), ex.end(), rng);
    for (int i = 0; i < 10; ++i) ap.push_back(absl::StrCat("k", rng() % 40));
    std::sort(ap.begin(), ap.end());
    ap.erase(std::unique(ap.begin(), ap.end()), ap.end());
    exact.push_back(ex);
    approx.push_back(ap);
  }
  in << "k 10\n";
  for (size_t q = 0; q < exact.size(); ++q) {
    in << "exact " << absl::StrJoin(exact[q], " ") << "\n";
    in << "approx " << absl::StrJoin(approx[q], " ") << "\n";
  }
  const std::string case_path = TestTempPath("precision_case.txt");
  const std::string out_path = TestTempPath("precision_numpy.txt");
  ASSERT_OK(WriteFileAtomically(case_path, in.str()));
  const std::string cmd = absl::StrCat(
      "/usr/bin/python3 '",
      RunfilePath("server/similarity/testdata/precision_reference.py"), "' '",
      case_path, "' > '", out_path, "'");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  ASSERT_OK_AND_ASSIGN(PrecisionAtNReport r,
                       ComputePrecisionAtN(queries, results, counts));
  ASSERT_GT(r.skipped_queries, 0);
  ASSERT_OK_AND_ASSIGN(double recall, RecallAtK(approx, exact, 10));
  std::ifstream out(out_path);
  std::string kind;
  int checked = 0;
  while (out >> kind) {
    if (kind == "recall") {
      double v;
      out >> v;
      EXPECT_NEAR(recall, v, 1e-6);
      ++checked;
      continue;
    }
    int n;
    double v;
    out >> n >> v;
    const auto pos = std::find(r.ns.begin(), r.ns.end(), n) - r.ns.begin();
    ASSERT_LT(pos, static_cast<long>(r.ns.size())) << n;
    EXPECT_NEAR(kind == "micro" ? r.micro[pos] : r.macro[pos], v, 1e-6)
        << kind << " P@" << n;
    ++checked;
  }
  EXPECT_EQ(checked, 9);
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
