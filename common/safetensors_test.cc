#include "common/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TestPath(const std::string& name) { return TestTempPath(name); }

std::string FloatBytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

// A file assembled by hand: 8-byte length + header + data.
std::string RawFile(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(&out[0], &n, 8);
  return out + header + data;
}

TEST(SafetensorsTest, StreamedTensorWritesTheSameFile) {
  const std::vector<float> values = {1, 2, 3, 4, 5, 6, 7, 8};
  SafetensorsWriter whole;
  ASSERT_OK(whole.AddTensor("w", DType::kF32, {2, 4}, FloatBytes(values)));
  ASSERT_OK(whole.AddTensor("b", DType::kF32, {1}, FloatBytes({9})));
  whole.SetMetadata("format", "pt");
  // The same tensor pulled in pieces of 3 floats (the last one shorter).
  SafetensorsWriter streamed;
  size_t next = 0;
  ASSERT_OK(streamed.AddTensor(
      "w", DType::kF32, {2, 4}, SafetensorsWriter::ByteSource([&](std::string* piece) {
        const size_t n = std::min<size_t>(3, values.size() - next);
        piece->append(reinterpret_cast<const char*>(values.data() + next), n * 4);
        next += n;
        return absl::OkStatus();
      })));
  ASSERT_OK(streamed.AddTensor("b", DType::kF32, {1}, FloatBytes({9})));
  streamed.SetMetadata("format", "pt");
  const std::string path = TestPath("streamed.safetensors");
  ASSERT_OK(streamed.WriteFile(path));
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(path));
  EXPECT_EQ(bytes, whole.Serialize());
}

TEST(SafetensorsTest, StreamedTensorOfTheWrongSizeWritesNothing) {
  const std::string path = TestPath("short.safetensors");
  for (size_t floats : {0u, 3u, 5u}) {  // 4 expected
    SafetensorsWriter w;
    bool called = false;
    ASSERT_OK(w.AddTensor("w", DType::kF32, {4},
                          SafetensorsWriter::ByteSource([&](std::string* piece) {
                            if (called) return absl::OkStatus();  // then nothing more
                            called = true;
                            piece->assign(floats * 4, '\0');
                            return absl::OkStatus();
                          })));
    EXPECT_THAT(w.WriteFile(path), StatusIs(absl::StatusCode::kInternal, HasSubstr("\"w\"")))
        << floats;
    EXPECT_FALSE(PathExists(path));
  }
  SafetensorsWriter failing;
  ASSERT_OK(failing.AddTensor("w", DType::kF32, {4},
                              SafetensorsWriter::ByteSource([](std::string*) {
                                return absl::DataLossError("source broke");
                              })));
  EXPECT_THAT(failing.WriteFile(path), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_FALSE(PathExists(path));
  // No temp file is left behind either.
  ASSERT_OK_AND_ASSIGN(auto names, ListDirectory(TestPath("")));
  for (const std::string& name : names) {
    EXPECT_EQ(name.rfind("short.safetensors", 0), std::string::npos) << name;
  }
}

TEST(SafetensorsTest, WriteThenOpenRoundTrips) {
  SafetensorsWriter w;
  ASSERT_OK(w.AddTensor("weight", DType::kF32, {2, 3},
                        FloatBytes({1, 2, 3, 4, 5, 6})));
  std::vector<int64_t> ids = {7, -8};
  ASSERT_OK(w.AddTensor("ids", DType::kI64, {2},
                        std::string(reinterpret_cast<char*>(ids.data()), 16)));
  ASSERT_OK(w.AddTensor("empty", DType::kF16, {0, 4}, ""));
  w.SetMetadata("format", "pt");
  const std::string path = TestPath("rt.safetensors");
  ASSERT_OK(w.WriteFile(path));

  ASSERT_OK_AND_ASSIGN(auto f, SafetensorsFile::Open(path));
  EXPECT_THAT(f->names(), ElementsAre("weight", "ids", "empty"));
  EXPECT_EQ(f->metadata().at("format"), "pt");
  ASSERT_OK_AND_ASSIGN(TensorView t, f->Get("weight"));
  EXPECT_EQ(t.dtype, DType::kF32);
  EXPECT_THAT(t.shape, ElementsAre(2, 3));
  EXPECT_EQ(t.num_elements(), 6);
  std::vector<float> out(6);
  ASSERT_OK(ReadAsFloat(t, 0, 6, out.data()));
  EXPECT_THAT(out, ElementsAre(1, 2, 3, 4, 5, 6));
  ASSERT_OK_AND_ASSIGN(TensorView i, f->Get("ids"));
  int64_t second;
  std::memcpy(&second, i.data + 8, 8);
  EXPECT_EQ(second, -8);
  EXPECT_THAT(f->Get("nope"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ReadAsFloat(i, 0, 1, out.data()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ReadAsFloat(t, 4, 3, out.data()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // The data section starts 8-byte aligned, as the reference writer does.
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(path));
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
}

// A file written by the Python `safetensors` package for
// {"a": torch.tensor([[1., 2.]])}, byte for byte.
TEST(SafetensorsTest, ReadsReferenceLayout) {
  const std::string header =
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}";
  ASSERT_OK_AND_ASSIGN(auto f, SafetensorsFile::FromBuffer(
                                   RawFile(header, FloatBytes({1, 2}))));
  ASSERT_OK_AND_ASSIGN(TensorView t, f->Get("a"));
  float v[2];
  ASSERT_OK(ReadAsFloat(t, 0, 2, v));
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], 2.0f);
}

TEST(SafetensorsTest, RejectsDamagedFilesWithClearErrors) {
  const std::string data = FloatBytes({1, 2});
  struct Case {
    std::string bytes;
    std::string message;
  };
  std::string huge(8, '\0');
  uint64_t big = 200ull * 1000 * 1000;
  std::memcpy(&huge[0], &big, 8);
  const std::vector<Case> cases = {
      {"", "at least 8"},
      {"\x05\x00\x00", "at least 8"},
      {huge, "exceeds the limit"},
      {RawFile("{\"a\":1}", "").substr(0, 10), "truncated"},
      {RawFile("not json", ""), "not valid JSON"},
      {RawFile("[1,2]", ""), "must be a JSON object"},
      {RawFile("{\"a\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", data),
       "unknown safetensors dtype"},
      {RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", data),
       "shape x dtype is 12 bytes"},
      {RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", data),
       "past the data section"},
      {RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", data),
       "begin > end"},
      {RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               data),
       "overlaps"},
      {RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", data),
       "unindexed bytes"},
      {RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", data),
       "trailing bytes"},
      {RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", data),
       "negative"},
      {RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,"
               "4294967296],\"data_offsets\":[0,8]}}",
               data),
       "overflows"},
      {RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", data),
       "must be an integer"},
      {RawFile("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", data), "missing string dtype"},
      {RawFile("{\"__metadata__\":{\"k\":3}}", ""), "is not a string"},
      {RawFile(std::string(1000, '[') + std::string(1000, ']'), ""), "nested deeper"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(SafetensorsFile::FromBuffer(c.bytes),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << "case expecting: " << c.message;
  }
}

TEST(SafetensorsTest, OpenReportsPathAndMissingFile) {
  EXPECT_THAT(SafetensorsFile::Open(TestPath("missing.safetensors")),
              StatusIs(absl::StatusCode::kNotFound));
  const std::string path = TestPath("garbage.safetensors");
  ASSERT_OK(WriteFileAtomically(path, "garbage!!garbage"));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(path)));
}

TEST(SafetensorsTest, WriterRejectsBadTensors) {
  SafetensorsWriter w;
  EXPECT_THAT(w.AddTensor("x", DType::kF32, {3}, "12345678"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(w.AddTensor("x", DType::kF32, {2}, "12345678"));
  EXPECT_THAT(w.AddTensor("x", DType::kF32, {2}, "12345678"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate")));
  EXPECT_THAT(w.AddTensor("__metadata__", DType::kU8, {0}, ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SafetensorsTest, KeyTensorsRoundTripAndAreValidated) {
  SafetensorsWriter w;
  ASSERT_OK(AddKeyTensors({"B001", "x", "B0022"}, &w));
  ASSERT_OK_AND_ASSIGN(auto f, SafetensorsFile::FromBuffer(w.Serialize()));
  ASSERT_OK_AND_ASSIGN(auto keys, ReadKeyTensors(*f, 3));
  EXPECT_THAT(keys, ElementsAre("B001", "x", "B0022"));
  EXPECT_THAT(ReadKeyTensors(*f, 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key_offsets")));
  ASSERT_OK_AND_ASSIGN(auto any_count, ReadKeyTensors(*f, -1));
  EXPECT_EQ(any_count.size(), 3u);

  SafetensorsWriter bad;
  EXPECT_THAT(AddKeyTensors({"a", "a"}, &bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate")));
  EXPECT_THAT(AddKeyTensors({"a", ""}, &bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));

  // Offsets running backwards or past key_bytes are refused.
  const std::vector<int64_t> offsets = {0, 3, 1};
  SafetensorsWriter odd;
  ASSERT_OK(odd.AddTensor("key_bytes", DType::kU8, {3}, "abc"));
  ASSERT_OK(odd.AddTensor("key_offsets", DType::kI64, {3},
                          std::string(reinterpret_cast<const char*>(offsets.data()), 24)));
  ASSERT_OK_AND_ASSIGN(auto g, SafetensorsFile::FromBuffer(odd.Serialize()));
  EXPECT_THAT(ReadKeyTensors(*g, 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of order")));
}

TEST(SafetensorsTest, HalfAndBFloat16Conversions) {
  // Exactly representable values round-trip.
  for (float f : {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f,
                  5.9604644775390625e-08f /* smallest subnormal */}) {
    EXPECT_EQ(HalfToFloat(FloatToHalf(f)), f) << f;
  }
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7C00);  // rounds to +Inf
  EXPECT_EQ(FloatToHalf(1e-9f), 0x0000);      // underflows to zero
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::nanf("")))));
  EXPECT_EQ(HalfToFloat(0x7C00), std::numeric_limits<float>::infinity());
  // Round to nearest even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  // Relative error of a generic value is within half an ulp (2^-11).
  for (float f : {0.1f, 3.14159f, -123.456f, 1e-5f}) {
    EXPECT_NEAR(HalfToFloat(FloatToHalf(f)), f, std::fabs(f) * 1e-3 + 6e-8);
  }
  EXPECT_EQ(BFloat16ToFloat(FloatToBFloat16(1.5f)), 1.5f);
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3F80);
  EXPECT_NEAR(BFloat16ToFloat(FloatToBFloat16(3.14159f)), 3.14159f, 0.02);
}

}  // namespace
}  // namespace recsys
