#include "common/metrics.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, RendersCountersGaugesAndHistograms) {
  MetricsRegistry registry;
  auto* requests = registry.AddCounter("rpc_requests_total", "Requests.",
                                       {"method", "code"});
  requests->WithLabels({"Search", "OK"})->Increment();
  requests->WithLabels({"Search", "OK"})->Increment(2);
  requests->WithLabels({"Upsert", "INVALID_ARGUMENT"})->Increment();
  requests->WithLabels({"Search", "OK"})->Increment(-5);  // ignored
  registry.AddGauge("entries", "Entries.", {"collection"})
      ->WithLabels({"items"})
      ->Set(1234.5);
  auto* latency = registry.AddHistogram("latency_seconds", "Latency.",
                                        {"method"}, {0.1, 1.0});
  Histogram* h = latency->WithLabels({"Search"});
  h->Observe(0.05);
  h->Observe(0.1);  // le is inclusive
  h->Observe(0.5);
  h->Observe(7);

  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("# TYPE rpc_requests_total counter\n"));
  EXPECT_THAT(text,
              HasSubstr("rpc_requests_total{method=\"Search\",code=\"OK\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("rpc_requests_total{method=\"Upsert\",code="
                              "\"INVALID_ARGUMENT\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("entries{collection=\"items\"} 1234.5\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_bucket{method=\"Search\",le=\"0.10000000000000001\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_bucket{method=\"Search\",le=\"1\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_bucket{method=\"Search\",le=\"+Inf\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_sum{method=\"Search\"} 7.6500000000000004\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_count{method=\"Search\"} 4\n"));
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  registry.AddCounter("odd_total", "Line one\nback\\slash", {"key"})
      ->WithLabels({"a\"b\\c\nd"})
      ->Increment();
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("# HELP odd_total Line one\\nback\\\\slash\n"));
  EXPECT_THAT(text, HasSubstr("odd_total{key=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST(MetricsTest, SameNameReturnsSameFamily) {
  MetricsRegistry registry;
  auto* a = registry.AddCounter("x_total", "X.", {"l"});
  auto* b = registry.AddCounter("x_total", "X.", {"l"});
  EXPECT_EQ(a, b);
  EXPECT_EQ(a->WithLabels({"v"}), b->WithLabels({"v"}));
}

TEST(MetricsTest, RemovedSeriesAreNotExportedAndCachedPointersStayValid) {
  MetricsRegistry registry;
  auto* entries = registry.AddGauge("entries", "Entries.", {"collection"});
  Gauge* items = entries->WithLabels({"items"});
  items->Set(5);
  entries->WithLabels({"gone"})->Set(7);
  entries->Remove({"gone"});
  entries->Remove({"never-there"});  // no-op
  std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("entries{collection=\"items\"} 5\n"));
  EXPECT_THAT(text, Not(HasSubstr("gone")));
  entries->Remove({"items"});
  items->Set(6);  // still a valid object, no longer exported
  EXPECT_THAT(registry.Render(), Not(HasSubstr("collection=\"items\"")));
  entries->WithLabels({"items"})->Set(1);  // a fresh series
  EXPECT_THAT(registry.Render(), HasSubstr("entries{collection=\"items\"} 1\n"));
}

TEST(MetricsDeathTest, ConflictingTypeIsFatal) {
  MetricsRegistry registry;
  registry.AddCounter("y_total", "Y.");
  EXPECT_DEATH(registry.AddGauge("y_total", "Y."), "two types");
  EXPECT_DEATH(registry.AddGauge("bad-name", "Z."), "invalid metric name");
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  MetricsRegistry registry;
  auto* counter = registry.AddCounter("c_total", "C.", {"t"});
  auto* hist = registry.AddHistogram("h", "H.", {}, {0.5});
  auto* gauge = registry.AddGauge("g", "G.")->WithLabels({});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter* c = counter->WithLabels({t % 2 ? "odd" : "even"});
      Histogram* h = hist->WithLabels({});
      for (int i = 0; i < kPerThread; ++i) {
        c->Increment();
        h->Observe(i % 2 ? 1.0 : 0.25);
        gauge->Add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter->WithLabels({"odd"})->value(), kThreads / 2 * kPerThread);
  EXPECT_EQ(counter->WithLabels({"even"})->value(), kThreads / 2 * kPerThread);
  Histogram* h = hist->WithLabels({});
  EXPECT_EQ(h->count(), kThreads * kPerThread);
  EXPECT_EQ(h->bucket_count(0), kThreads * kPerThread / 2);
  EXPECT_DOUBLE_EQ(h->sum(), kThreads * kPerThread / 2 * 1.25);
  EXPECT_EQ(gauge->value(), kThreads * kPerThread);
}

TEST(MetricsTest, GlobalRegistryExportsProcessMetrics) {
  const std::string text = MetricsRegistry::Global().Render();
  EXPECT_THAT(text, HasSubstr("# TYPE process_resident_memory_bytes gauge"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter"));
  EXPECT_THAT(text, Not(HasSubstr("process_resident_memory_bytes 0\n")));
}

// promtool (Debian package `prometheus`) is the reference parser and linter
// of the exposition format.
TEST(MetricsTest, PromtoolAcceptsRenderedRegistry) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (deploy/install_deps.sh installs it)";
  }
  MetricsRegistry registry;
  registry.AddCounter("app_requests_total", "Requests by method.", {"method"})
      ->WithLabels({"Se\"arch\n"})
      ->Increment(3);
  registry.AddGauge("app_entries", "Entries.", {"collection", "version"})
      ->WithLabels({"items", "7"})
      ->Set(-2.5e-7);
  auto* h = registry.AddHistogram("app_latency_seconds", "Latency.", {"method"},
                                  LatencyBuckets());
  h->WithLabels({"Search"})->Observe(0.003);
  h->WithLabels({"Upsert"})->Observe(12);
  registry.AddGauge("app_empty", "A family with no children yet.", {"x"});
  const std::string path = TestTempPath("metrics.txt");
  {
    std::ofstream out(path);
    out << registry.Render() << MetricsRegistry::Global().Render();
  }
  const std::string cmd = "promtool check metrics < " + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[256];
  while (fgets(buf, sizeof(buf), p)) output += buf;
  const int rc = pclose(p);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_EQ(output, "") << "promtool lint findings";
}

}  // namespace
}  // namespace recsys
