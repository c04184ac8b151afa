#include "retrieval/record_io.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace recsys {
namespace retrieval {
namespace {

TEST(RecordIoTest, VarintsRoundTripInTheFewestBytes) {
  const uint64_t values[] = {0, 1, 127, 128, 300, uint64_t{1} << 35,
                             std::numeric_limits<uint64_t>::max()};
  const size_t sizes[] = {1, 1, 1, 2, 2, 6, 10};
  for (size_t i = 0; i < 7; ++i) {
    std::string out;
    RecordWriter(&out).PutVarint(values[i]);
    EXPECT_EQ(out.size(), sizes[i]) << values[i];
    RecordReader r(out);
    uint64_t v = 0;
    ASSERT_TRUE(r.GetVarint(&v));
    EXPECT_EQ(v, values[i]);
    EXPECT_TRUE(r.done());
  }
}

TEST(RecordIoTest, VarintStringsAreViewsAndShortInputIsRefused) {
  std::string out;
  RecordWriter w(&out);
  w.PutVarintString("title");
  w.PutVarintString("");
  RecordReader r(out);
  absl::string_view a, b;
  ASSERT_TRUE(r.GetVarintString(&a));
  ASSERT_TRUE(r.GetVarintString(&b));
  EXPECT_EQ(a, "title");
  EXPECT_EQ(a.data(), out.data() + 1);  // no copy
  EXPECT_EQ(b, "");
  EXPECT_FALSE(r.GetVarintString(&a));  // nothing left

  RecordReader torn(absl::string_view(out.data(), 3));  // length 5, 2 bytes
  EXPECT_FALSE(torn.GetVarintString(&a));
  const std::string unterminated = "\x80\x80";
  uint64_t v;
  EXPECT_FALSE(RecordReader(unterminated).GetVarint(&v));
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
