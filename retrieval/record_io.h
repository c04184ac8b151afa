// Little-endian binary encoding for snapshot files and staging-log records:
// fixed-width integers, length-prefixed strings, float arrays, payloads;
// and varints (LEB128: 7 bits a byte, low bits first) with varint-prefixed
// strings, for the compact in-memory payloads of CollectionVersion.
// The reader never reads past its buffer: every Get* returns false on a
// short or malformed input.
//
// Thread-safety: none needed (values owned by the caller).
#ifndef RECSYS_RETRIEVAL_RECORD_IO_H_
#define RECSYS_RETRIEVAL_RECORD_IO_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "retrieval/collection_config.h"

namespace recsys {
namespace retrieval {

class RecordWriter {
 public:
  explicit RecordWriter(std::string* out) : out_(out) {}
  void PutU8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void PutU32(uint32_t v) { out_->append(reinterpret_cast<const char*>(&v), 4); }
  void PutU64(uint64_t v) { out_->append(reinterpret_cast<const char*>(&v), 8); }
  void PutString(absl::string_view s) {
    PutU32(static_cast<uint32_t>(s.size()));
    out_->append(s.data(), s.size());
  }
  void PutFloats(const float* v, size_t n) {
    out_->append(reinterpret_cast<const char*>(v), n * sizeof(float));
  }
  void PutVarint(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }
  void PutVarintString(absl::string_view s) {
    PutVarint(s.size());
    out_->append(s.data(), s.size());
  }
  void PutPayload(const Payload& p) {
    PutU32(static_cast<uint32_t>(p.size()));
    for (const auto& kv : p) {
      PutString(kv.first);
      PutString(kv.second);
    }
  }

 private:
  std::string* out_;
};

class RecordReader {
 public:
  explicit RecordReader(absl::string_view in) : in_(in) {}
  bool GetU8(uint8_t* v) { return GetRaw(v, 1); }
  bool GetU32(uint32_t* v) { return GetRaw(v, 4); }
  bool GetU64(uint64_t* v) { return GetRaw(v, 8); }
  bool GetString(std::string* s) {
    uint32_t n;
    if (!GetU32(&n) || n > in_.size() - pos_) return false;
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool GetFloats(float* v, size_t n) { return GetRaw(v, n * sizeof(float)); }
  bool GetPayload(Payload* p) {
    uint32_t n;
    // Each pair takes at least 8 bytes: bounds the allocation.
    if (!GetU32(&n) || n > (in_.size() - pos_) / 8) return false;
    p->resize(n);
    for (auto& kv : *p) {
      if (!GetString(&kv.first) || !GetString(&kv.second)) return false;
    }
    return true;
  }
  bool GetVarint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && pos_ < in_.size(); shift += 7) {
      const uint8_t b = static_cast<uint8_t>(in_[pos_++]);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  // A view into the input (no copy).
  bool GetVarintString(absl::string_view* s) {
    uint64_t n;
    return GetVarint(&n) && GetBytes(n, s);
  }
  // Returns the next n bytes and moves past them.
  bool GetBytes(size_t n, absl::string_view* out) {
    if (n > in_.size() - pos_) return false;
    *out = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  size_t position() const { return pos_; }
  size_t remaining() const { return in_.size() - pos_; }
  bool done() const { return pos_ == in_.size(); }

 private:
  bool GetRaw(void* v, size_t n) {
    if (n > in_.size() - pos_) return false;
    std::memcpy(v, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  absl::string_view in_;
  size_t pos_ = 0;
};

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_RECORD_IO_H_
