// Requests that the service parses itself (gRPC methods registered raw).
//
// gRPC 1.51's callback server answers a request it cannot deserialize with
// UNIMPLEMENTED and an empty message, before any handler runs. The usual
// cause is a proto3 `string` field holding bytes that are not UTF-8 (a
// history key copied from a Latin-1 log, say). Methods that carry callers'
// strings are registered raw and parse with ParseRequest, which answers
// INVALID_ARGUMENT naming the field: "history[2]: expected valid UTF-8, got
// 'caf\xe9'".
//
// Thread-safety: pure functions.
#ifndef RECSYS_COMMON_RAW_REQUEST_H_
#define RECSYS_COMMON_RAW_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"

namespace recsys {

// Parses `bytes` into `message` (cleared first). On failure:
// INVALID_ARGUMENT with the first string field that is not UTF-8 (its path
// and the quoted value), or saying that the bytes are not a valid message
// of that type.
absl::Status ParseRequestBytes(absl::string_view bytes, google::protobuf::Message* message);
absl::Status ParseRequest(const grpc::ByteBuffer& in, google::protobuf::Message* message);

// The bytes of `in` in one string (the slow path: a request that did not
// parse, taken apart by hand).
std::string FlatBytes(const grpc::ByteBuffer& in);

// `message` as a gRPC response payload.
absl::Status SerializeResponse(const google::protobuf::Message& message, grpc::ByteBuffer* out);

// A raw unary call's body: parses `in` as a Request, runs
// `work(const Request&, Response*)` (returning absl::Status) and, when it
// succeeds, serializes the Response into `out`.
template <typename Request, typename Response, typename Work>
absl::Status HandleRaw(const grpc::ByteBuffer& in, grpc::ByteBuffer* out, Work&& work) {
  Request request;
  if (absl::Status parsed = ParseRequest(in, &request); !parsed.ok()) return parsed;
  Response response;
  if (absl::Status done = work(request, &response); !done.ok()) return done;
  return SerializeResponse(response, out);
}

// The first string field in `bytes`, read as a `type` message, whose value
// is not UTF-8, as "PATH: expected valid UTF-8, got 'VALUE'". PATH names
// repeated fields by index and nested ones with dots ("users[1].history[0]",
// "payload_filter['color']" for a map value, "payload_filter key" for a map
// key). Empty if every string is UTF-8 or the bytes stop being readable
// first. Nesting deeper than 32 levels is not searched.
std::string FirstInvalidUtf8Field(const google::protobuf::Descriptor& type,
                                  absl::string_view bytes);

// The length-delimited values of field `number` in `bytes` (a serialized
// message), in order: the elements of a repeated message field, for parsing
// them one at a time. Fails only when the bytes are not protobuf.
absl::Status SplitRepeatedField(absl::string_view bytes, int number,
                                std::vector<std::string>* values);

}  // namespace recsys

#endif  // RECSYS_COMMON_RAW_REQUEST_H_
