#include "common/call_metrics.h"

#include "common/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::HasSubstr;

TEST(CallMetricsTest, RecordsCodeAndLatencyOncePerCall) {
  MetricsRegistry registry;
  CallMetrics m("recsys_test", "Test", {"collection"}, &registry);
  {
    CallRecord r(m, "Search");
    r.SetLabel(0, "items");
    r.Finish(absl::InvalidArgumentError("k"));
    r.Finish(absl::OkStatus());  // ignored: one call, one record
  }
  {
    CallRecord r(m, "Search");  // collection unknown: "-"
    r.Finish(absl::OkStatus());
  }
  EXPECT_EQ(m.requests()->WithLabels({"Search", "items", "INVALID_ARGUMENT"})->value(), 1);
  EXPECT_EQ(m.requests()->WithLabels({"Search", "items", "OK"})->value(), 0);
  EXPECT_EQ(m.requests()->WithLabels({"Search", "-", "OK"})->value(), 1);
  EXPECT_EQ(m.latency()->WithLabels({"Search", "items"})->count(), 1u);
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("recsys_test_requests_total{method=\"Search\",collection=\"items\",code=\"INVALID_ARGUMENT\"} 1"));
  EXPECT_THAT(text, HasSubstr("# TYPE recsys_test_request_seconds histogram"));
}

}  // namespace
}  // namespace recsys
