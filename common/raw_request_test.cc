#include "common/raw_request.h"

#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/recommender.pb.h"

namespace recsys {
namespace {

namespace pb = ::recsys::v1;
using ::testing::HasSubstr;

// Writes `bad` into the serialized `m` where `marker` (same length) stands:
// protobuf's own writer refuses invalid UTF-8, a client in another language
// may not.
std::string WithBytes(const google::protobuf::Message& m, const std::string& marker,
                      const std::string& bad) {
  EXPECT_EQ(marker.size(), bad.size());
  std::string wire = m.SerializeAsString();
  const size_t at = wire.find(marker);
  EXPECT_NE(at, std::string::npos);
  wire.replace(at, marker.size(), bad);
  return wire;
}

TEST(RawRequestTest, ParsesAValidRequest) {
  pb::RecommendRequest r;
  r.add_history("a");
  r.add_history("caf\xc3\xa9");
  r.set_k(7);
  pb::RecommendRequest got;
  ASSERT_OK(ParseRequestBytes(r.SerializeAsString(), &got));
  EXPECT_EQ(got.SerializeAsString(), r.SerializeAsString());
  grpc::ByteBuffer buffer;
  ASSERT_OK(SerializeResponse(r, &buffer));
  pb::RecommendRequest again;
  ASSERT_OK(ParseRequest(buffer, &again));
  EXPECT_EQ(again.history(1), "caf\xc3\xa9");
  EXPECT_EQ(FirstInvalidUtf8Field(*pb::RecommendRequest::descriptor(), r.SerializeAsString()), "");
}

TEST(RawRequestTest, NamesTheFieldWithInvalidUtf8) {
  pb::RecommendRequest r;
  r.add_history("a");
  r.add_history("b");
  r.add_history("cafXX");
  r.set_k(3);
  const std::string wire = WithBytes(r, "cafXX", "caf\xe9!");
  pb::RecommendRequest got;
  absl::Status s = ParseRequestBytes(wire, &got);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "history[2]: expected valid UTF-8, got 'caf\\xe9!'");
  EXPECT_EQ(got.history_size(), 0);  // nothing half-parsed is left
  // The same through a ByteBuffer, as a raw gRPC method receives it.
  grpc::Slice slice(wire);
  grpc::ByteBuffer buffer(&slice, 1);
  s = ParseRequest(buffer, &got);
  EXPECT_EQ(s.message(), "history[2]: expected valid UTF-8, got 'caf\\xe9!'");
}

TEST(RawRequestTest, NamesNestedAndMapFields) {
  pb::RecommendBatchRequest batch;
  batch.add_users()->add_history("fine");
  pb::RecommendRequest* second = batch.add_users();
  second->add_history("x");
  second->add_history("QQ");
  std::string wire = WithBytes(batch, "QQ", "\xff\xfe");
  EXPECT_EQ(FirstInvalidUtf8Field(*pb::RecommendBatchRequest::descriptor(), wire),
            "users[1].history[1]: expected valid UTF-8, got '\\xff\\xfe'");

  pb::SimilarItemsRequest similar;
  similar.set_item_key("item");
  (*similar.mutable_payload_filter())["color"] = "VV";
  wire = WithBytes(similar, "VV", "\xc3(");
  pb::SimilarItemsRequest got;
  EXPECT_EQ(ParseRequestBytes(wire, &got).message(),
            "payload_filter['color']: expected valid UTF-8, got '\\xc3('");
  similar.clear_payload_filter();
  (*similar.mutable_payload_filter())["KK"] = "red";
  wire = WithBytes(similar, "KK", "\xed\xa0");  // a surrogate's lead bytes
  EXPECT_THAT(ParseRequestBytes(wire, &got).message(),
              HasSubstr("payload_filter key: expected valid UTF-8"));
}

TEST(RawRequestTest, BytesThatAreNotProtobufSaySo) {
  pb::RecommendRequest got;
  for (const std::string& junk :
       {std::string("\x0a\x05" "ab", 4), std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11),
        std::string("\x0b", 1)}) {
    absl::Status s = ParseRequestBytes(junk, &got);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("the request is not a valid recsys.v1.RecommendRequest"));
  }
  // A history element cut short inside a nested user.
  std::vector<std::string> parts;
  EXPECT_FALSE(SplitRepeatedField(std::string("\x0a\x09\x0a\x01", 4), 1, &parts).ok());
}

TEST(RawRequestTest, SplitsARepeatedMessageFieldInOrder) {
  pb::RecommendBatchRequest batch;
  for (const char* key : {"a", "b", "c"}) batch.add_users()->add_history(key);
  std::vector<std::string> users;
  ASSERT_OK(SplitRepeatedField(batch.SerializeAsString(), 1, &users));
  ASSERT_EQ(users.size(), 3u);
  pb::RecommendRequest u;
  ASSERT_TRUE(u.ParseFromString(users[2]));
  EXPECT_EQ(u.history(0), "c");
}

}  // namespace
}  // namespace recsys
