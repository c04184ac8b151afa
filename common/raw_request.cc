#include "common/raw_request.h"

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/user_input.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/proto_buffer_writer.h"

namespace recsys {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

constexpr int kMaxDepth = 32;

// One field's value as read from the wire: its number and, for a
// length-delimited one, its bytes.
struct WireField {
  int number = 0;
  bool length_delimited = false;
  std::string bytes;
};

// Reads the next field of `in` (over `size` bytes); false at the end or
// when the bytes are not protobuf (then *broken is set).
bool NextField(CodedInputStream* in, int size, WireField* f, bool* broken) {
  const uint32_t tag = in->ReadTag();
  if (tag == 0) {  // the end, or a zero / unreadable tag before it
    *broken = in->CurrentPosition() < size;
    return false;
  }
  f->number = WireFormatLite::GetTagFieldNumber(tag);
  f->length_delimited =
      WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
  f->bytes.clear();
  if (!f->length_delimited) {
    if (!WireFormatLite::SkipField(in, tag)) {
      *broken = true;
      return false;
    }
    return true;
  }
  uint32_t length = 0;
  if (!in->ReadVarint32(&length) || !in->ReadString(&f->bytes, static_cast<int>(length))) {
    *broken = true;
    return false;
  }
  return true;
}

std::string Invalid(absl::string_view path, absl::string_view value) {
  return absl::StrCat(path, ": expected valid UTF-8, got ", QuoteUserInput(value));
}

std::string Walk(const Descriptor& type, absl::string_view bytes, const std::string& prefix,
                 int depth);

// A map entry's key and value; `path` is the map field's.
std::string WalkMapEntry(const FieldDescriptor& map, absl::string_view bytes,
                         const std::string& path, int depth) {
  const Descriptor& entry = *map.message_type();
  const FieldDescriptor* key_field = entry.FindFieldByNumber(1);
  const FieldDescriptor* value_field = entry.FindFieldByNumber(2);
  std::string key, value;
  bool has_value = false;
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  WireField f;
  bool broken = false;
  while (NextField(&in, static_cast<int>(bytes.size()), &f, &broken)) {
    if (!f.length_delimited) continue;
    if (f.number == 1) key = f.bytes;
    if (f.number == 2) {
      value = f.bytes;
      has_value = true;
    }
  }
  if (key_field != nullptr && key_field->type() == FieldDescriptor::TYPE_STRING &&
      !IsValidUtf8(key)) {
    return Invalid(absl::StrCat(path, " key"), key);
  }
  if (!has_value || value_field == nullptr) return "";
  const std::string value_path = absl::StrCat(path, "[", QuoteUserInput(key), "]");
  if (value_field->type() == FieldDescriptor::TYPE_STRING) {
    return IsValidUtf8(value) ? "" : Invalid(value_path, value);
  }
  if (value_field->type() == FieldDescriptor::TYPE_MESSAGE) {
    return Walk(*value_field->message_type(), value, value_path + ".", depth + 1);
  }
  return "";
}

std::string Walk(const Descriptor& type, absl::string_view bytes, const std::string& prefix,
                 int depth) {
  if (depth > kMaxDepth) return "";
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  absl::flat_hash_map<int, int> seen;  // occurrences per field number: repeated indexes
  WireField f;
  bool broken = false;
  while (NextField(&in, static_cast<int>(bytes.size()), &f, &broken)) {
    if (!f.length_delimited) continue;
    const FieldDescriptor* field = type.FindFieldByNumber(f.number);
    if (field == nullptr) continue;  // unknown: kept, not checked (proto3 keeps its bytes)
    const int index = seen[f.number]++;
    std::string path = prefix + field->name();
    if (field->is_map()) {
      std::string r = WalkMapEntry(*field, f.bytes, path, depth);
      if (!r.empty()) return r;
      continue;
    }
    if (field->is_repeated()) absl::StrAppend(&path, "[", index, "]");
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      if (!IsValidUtf8(f.bytes)) return Invalid(path, f.bytes);
    } else if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      std::string r = Walk(*field->message_type(), f.bytes, path + ".", depth + 1);
      if (!r.empty()) return r;
    }
  }
  return "";
}

}  // namespace

std::string FirstInvalidUtf8Field(const Descriptor& type, absl::string_view bytes) {
  return Walk(type, bytes, "", 0);
}

namespace {

// Why `bytes` did not parse as a `message`, which is cleared (without
// parsing again: protobuf logs every string it refuses).
absl::Status WhyUnparseable(absl::string_view bytes, google::protobuf::Message* message) {
  message->Clear();
  std::string field = FirstInvalidUtf8Field(*message->GetDescriptor(), bytes);
  if (!field.empty()) return absl::InvalidArgumentError(field);
  return absl::InvalidArgumentError(absl::StrCat(
      "the request is not a valid ", message->GetTypeName(), ": the ", bytes.size(),
      " bytes are not that protobuf message"));
}

}  // namespace

absl::Status ParseRequestBytes(absl::string_view bytes, google::protobuf::Message* message) {
  if (message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::OkStatus();
  }
  return WhyUnparseable(bytes, message);
}

absl::Status ParseRequest(const grpc::ByteBuffer& in, google::protobuf::Message* message) {
  grpc::ByteBuffer copy(in);  // shares the slices
  grpc::ProtoBufferReader reader(&copy);
  if (message->ParseFromZeroCopyStream(&reader)) return absl::OkStatus();
  return WhyUnparseable(FlatBytes(in), message);
}

std::string FlatBytes(const grpc::ByteBuffer& in) {
  std::vector<grpc::Slice> slices;
  std::string flat;
  if (in.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      flat.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return flat;
}

absl::Status SerializeResponse(const google::protobuf::Message& message, grpc::ByteBuffer* out) {
  grpc::ProtoBufferWriter writer(out, grpc::kProtoBufferWriterMaxBufferLength,
                                 static_cast<int>(message.ByteSizeLong()));
  if (!message.SerializeToZeroCopyStream(&writer)) {
    return absl::InternalError(absl::StrCat("cannot serialize the ", message.GetTypeName()));
  }
  return absl::OkStatus();
}

absl::Status SplitRepeatedField(absl::string_view bytes, int number,
                                std::vector<std::string>* values) {
  values->clear();
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  WireField f;
  bool broken = false;
  while (NextField(&in, static_cast<int>(bytes.size()), &f, &broken)) {
    if (f.number == number && f.length_delimited) values->push_back(std::move(f.bytes));
  }
  if (broken) return absl::InvalidArgumentError("the bytes are not protobuf");
  return absl::OkStatus();
}

}  // namespace recsys
