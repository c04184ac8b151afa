#include "common/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/little_endian.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace recsys {
namespace {

using json = nlohmann::json;

// The header is a flat object of objects; anything nested deeper than this is
// malformed, and refusing it before parsing bounds the parser's work.
constexpr int kMaxJsonDepth = 4;
constexpr size_t kMaxTensors = 1 << 20;
constexpr size_t kMaxRank = 16;

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kF64, "F64", 8},   {DType::kF32, "F32", 4},
    {DType::kF16, "F16", 2},   {DType::kBF16, "BF16", 2},
    {DType::kI64, "I64", 8},   {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2},   {DType::kI8, "I8", 1},
    {DType::kU8, "U8", 1},     {DType::kBool, "BOOL", 1},
};

absl::Status CheckJsonDepth(absl::string_view text) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) {
        return absl::InvalidArgumentError(
            absl::StrCat("safetensors header: JSON nested deeper than ",
                         kMaxJsonDepth, " levels"));
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ToUint64(const json& v, absl::string_view what) {
  if (!v.is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors header: ", what, " must be an integer"));
  }
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  int64_t x = v.get<int64_t>();
  if (x < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors header: ", what, " is negative"));
  }
  return static_cast<uint64_t>(x);
}

}  // namespace

absl::string_view DTypeName(DType dtype) {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return info.name;
  }
  return "?";
}

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (const auto& info : kDTypes) {
    if (name == info.name) return info.dtype;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown safetensors dtype \"", name, "\""));
}

size_t DTypeSize(DType dtype) {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return info.size;
  }
  return 0;
}

int64_t TensorView::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, absl::StrCat("stat ", path));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a safetensors file (", size, " bytes, need at least 8)"));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return ErrnoToStatus(err, absl::StrCat("mmap ", path));
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->mapping_ = map;
  file->mapping_size_ = size;
  absl::Status s = file->Parse(static_cast<const uint8_t*>(map), size);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  }
  return file;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::FromBuffer(
    std::string bytes) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->owned_ = std::move(bytes);
  RETURN_IF_ERROR(
      file->Parse(reinterpret_cast<const uint8_t*>(file->owned_.data()),
                  file->owned_.size()));
  return file;
}

absl::Status SafetensorsFile::Parse(const uint8_t* data, size_t size) {
  if (size < 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a safetensors file (", size, " bytes, need at least 8)"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  if (header_len > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors header of ", header_len,
                     " bytes exceeds the limit of ", kMaxHeaderBytes));
  }
  if (header_len > size - 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("truncated safetensors file: header claims ", header_len,
                     " bytes, file has ", size - 8, " after the length"));
  }
  const absl::string_view header_text(reinterpret_cast<const char*>(data + 8),
                                      header_len);
  RETURN_IF_ERROR(CheckJsonDepth(header_text));
  json header = json::parse(header_text.begin(), header_text.end(), nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded()) {
    return absl::InvalidArgumentError("safetensors header is not valid JSON");
  }
  if (!header.is_object()) {
    return absl::InvalidArgumentError(
        "safetensors header must be a JSON object");
  }
  if (header.size() > kMaxTensors) {
    return absl::InvalidArgumentError("safetensors header lists too many tensors");
  }
  const uint8_t* body = data + 8 + header_len;
  const uint64_t body_len = size - 8 - header_len;

  struct Span {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) {
        return absl::InvalidArgumentError(
            "safetensors __metadata__ must be an object of strings");
      }
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "safetensors __metadata__[\"", m.key(), "\"] is not a string"));
        }
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&name](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors tensor \"", name, "\": ", what));
    };
    if (!v.is_object()) return bad("entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) return bad("missing string dtype");
    if (sh == v.end() || !sh->is_array()) return bad("missing shape array");
    if (off == v.end() || !off->is_array() || off->size() != 2) {
      return bad("data_offsets must be [begin, end]");
    }
    absl::StatusOr<DType> dtype = ParseDType(dt->get<std::string>());
    if (!dtype.ok()) return bad(dtype.status().message());
    if (sh->size() > kMaxRank) return bad("rank exceeds 16");
    TensorView view;
    view.dtype = *dtype;
    uint64_t nbytes = DTypeSize(*dtype);
    for (const json& d : *sh) {
      ASSIGN_OR_RETURN(uint64_t dim, ToUint64(d, "shape entry"));
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return bad("shape entry too large");
      }
      if (dim != 0 && nbytes > std::numeric_limits<uint64_t>::max() / dim) {
        return bad("shape overflows");
      }
      nbytes *= dim;
      view.shape.push_back(static_cast<int64_t>(dim));
    }
    ASSIGN_OR_RETURN(uint64_t begin, ToUint64((*off)[0], "data_offsets[0]"));
    ASSIGN_OR_RETURN(uint64_t end, ToUint64((*off)[1], "data_offsets[1]"));
    if (begin > end) return bad("data_offsets begin > end");
    if (end > body_len) {
      return bad(absl::StrCat("data_offsets end ", end,
                              " is past the data section of ", body_len,
                              " bytes (truncated file?)"));
    }
    if (end - begin != nbytes) {
      return bad(absl::StrCat("shape x dtype is ", nbytes,
                              " bytes but data_offsets span ", end - begin));
    }
    view.data = body + begin;
    view.size_bytes = static_cast<size_t>(nbytes);
    auto inserted = tensors_.emplace(name, std::move(view));
    spans.push_back({begin, end, &inserted.first->first});
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const Span& s : spans) {
    if (s.begin < cursor) {
      return absl::InvalidArgumentError(absl::StrCat(
          "safetensors tensor \"", *s.name, "\" overlaps the previous tensor"));
    }
    if (s.begin > cursor) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors data has ", s.begin - cursor,
                       " unindexed bytes before tensor \"", *s.name, "\""));
    }
    cursor = s.end;
    names_.push_back(*s.name);
  }
  if (cursor != body_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors data has ", body_len - cursor,
                     " trailing bytes not covered by any tensor"));
  }
  return absl::OkStatus();
}

bool SafetensorsFile::Contains(const std::string& name) const {
  return tensors_.count(name) > 0;
}

absl::StatusOr<TensorView> SafetensorsFile::Get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no tensor \"", name, "\" in safetensors file"));
  }
  return it->second;
}

absl::StatusOr<uint64_t> SafetensorsWriter::CheckNewTensor(
    const std::string& name, DType dtype, const std::vector<int64_t>& shape) const {
  if (name.empty() || name == "__metadata__") {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid tensor name \"", name, "\""));
  }
  for (const Entry& e : entries_) {
    if (e.name == name) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate tensor name \"", name, "\""));
    }
  }
  uint64_t expected = DTypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", name, "\" has a negative dimension"));
    }
    expected *= static_cast<uint64_t>(d);
  }
  return expected;
}

absl::Status SafetensorsWriter::AddTensor(const std::string& name, DType dtype,
                                          std::vector<int64_t> shape,
                                          absl::string_view bytes) {
  ASSIGN_OR_RETURN(const uint64_t expected, CheckNewTensor(name, dtype, shape));
  if (expected != bytes.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", name, "\": shape x dtype is ", expected,
                     " bytes, got ", bytes.size()));
  }
  entries_.push_back({name, dtype, std::move(shape), expected, std::string(bytes), nullptr});
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::AddTensor(const std::string& name, DType dtype,
                                          std::vector<int64_t> shape, ByteSource source) {
  ASSIGN_OR_RETURN(const uint64_t expected, CheckNewTensor(name, dtype, shape));
  if (!source) return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\": no source"));
  entries_.push_back({name, dtype, std::move(shape), expected, "", std::move(source)});
  return absl::OkStatus();
}

void SafetensorsWriter::SetMetadata(const std::string& key,
                                    const std::string& value) {
  metadata_[key] = value;
}

absl::Status SafetensorsWriter::WriteTo(
    const std::function<absl::Status(absl::string_view)>& append) const {
  json header = json::object();
  if (!metadata_.empty()) {
    json meta = json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    header[e.name] = {{"dtype", std::string(DTypeName(e.dtype))},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.size}}};
    offset += e.size;
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned.
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');
  std::string prefix;
  AppendLittleEndian<uint64_t>(&prefix, text.size());
  RETURN_IF_ERROR(append(prefix));
  RETURN_IF_ERROR(append(text));
  std::string piece;
  for (const Entry& e : entries_) {
    if (!e.source) {
      RETURN_IF_ERROR(append(e.bytes));
      continue;
    }
    for (uint64_t done = 0; done < e.size;) {
      piece.clear();
      RETURN_IF_ERROR(e.source(&piece));
      if (piece.empty() || piece.size() > e.size - done) {
        return absl::InternalError(absl::StrCat(
            "tensor \"", e.name, "\": its source produced ",
            piece.empty() ? "nothing" : "too many bytes", " after ", done, " of ", e.size,
            " bytes"));
      }
      RETURN_IF_ERROR(append(piece));
      done += piece.size();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SafetensorsWriter::SerializeOrError() const {
  std::string out;
  RETURN_IF_ERROR(WriteTo([&out](absl::string_view piece) {
    out.append(piece.data(), piece.size());
    return absl::OkStatus();
  }));
  return out;
}

std::string SafetensorsWriter::Serialize() const {
  absl::StatusOr<std::string> out = SerializeOrError();
  return out.ok() ? *std::move(out) : std::string();
}

absl::Status SafetensorsWriter::WriteFile(const std::string& path) const {
  return WriteFileAtomicallyStreamed(
      path, [this](const AppendFunction& append) { return WriteTo(append); });
}

absl::Status AddKeyTensors(const std::vector<std::string>& keys,
                           SafetensorsWriter* writer) {
  std::string bytes;
  std::vector<int64_t> offsets{0};
  std::set<absl::string_view> seen;
  for (const std::string& k : keys) {
    if (k.empty()) return absl::InvalidArgumentError("empty key");
    if (!seen.insert(k).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate key \"", k, "\""));
    }
    bytes += k;
    offsets.push_back(static_cast<int64_t>(bytes.size()));
  }
  RETURN_IF_ERROR(writer->AddTensor("key_bytes", DType::kU8,
                                    {static_cast<int64_t>(bytes.size())}, bytes));
  return writer->AddTensor(
      "key_offsets", DType::kI64, {static_cast<int64_t>(offsets.size())},
      absl::string_view(reinterpret_cast<const char*>(offsets.data()),
                        offsets.size() * sizeof(int64_t)));
}

absl::StatusOr<std::vector<std::string>> ReadKeyTensors(
    const SafetensorsFile& file, int64_t expected_count) {
  ASSIGN_OR_RETURN(TensorView bytes, file.Get("key_bytes"));
  ASSIGN_OR_RETURN(TensorView offsets, file.Get("key_offsets"));
  if (bytes.dtype != DType::kU8 || bytes.shape.size() != 1) {
    return absl::InvalidArgumentError("key_bytes must be U8 [n]");
  }
  if (offsets.dtype != DType::kI64 || offsets.shape.size() != 1 ||
      offsets.shape[0] < 1 ||
      (expected_count >= 0 && offsets.shape[0] != expected_count + 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key_offsets must be I64 [",
        expected_count >= 0 ? absl::StrCat(expected_count + 1) : "n + 1", "]"));
  }
  const int64_t n = offsets.shape[0] - 1;
  std::vector<std::string> keys;
  keys.reserve(static_cast<size_t>(n));
  std::set<absl::string_view> seen;
  int64_t prev = 0;
  for (int64_t i = 0; i <= n; ++i) {
    int64_t off;
    std::memcpy(&off, offsets.data + 8 * i, 8);
    if ((i == 0 && off != 0) || off < prev ||
        off > static_cast<int64_t>(bytes.size_bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("key_offsets[", i, "] out of order or out of bounds"));
    }
    if (i > 0) {
      if (off == prev) {
        return absl::InvalidArgumentError(absl::StrCat("key ", i - 1, " is empty"));
      }
      const absl::string_view key(reinterpret_cast<const char*>(bytes.data) + prev,
                                  static_cast<size_t>(off - prev));
      if (!seen.insert(key).second) {
        return absl::InvalidArgumentError(absl::StrCat("duplicate key \"", key, "\""));
      }
      keys.emplace_back(key);
    }
    prev = off;
  }
  return keys;
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3FF;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {  // Inf or NaN
    return sign | 0x7C00 | (abs > 0x7F800000u ? 0x200 : 0);
  }
  if (abs >= 0x477FF000u) return sign | 0x7C00;  // overflow -> Inf
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal
    if (abs < 0x33000000u) return sign;  // under half the smallest subnormal
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t value = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (value & 1))) ++value;
    return sign | static_cast<uint16_t>(value);
  }
  uint32_t value = ((abs >> 13) - ((127 - 15) << 10));
  const uint32_t rem = abs & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (value & 1))) ++value;
  return sign | static_cast<uint16_t>(value);
}

float BFloat16ToFloat(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

uint16_t FloatToBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40);
  const uint32_t rounding = 0x7FFF + ((x >> 16) & 1);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

absl::Status ReadAsFloat(const TensorView& view, int64_t offset, int64_t n,
                         float* out) {
  const int64_t total = view.num_elements();
  if (offset < 0 || n < 0 || offset > total || n > total - offset) {
    return absl::InvalidArgumentError(
        absl::StrCat("element range [", offset, ", ", offset + n,
                     ") is outside a tensor of ", total, " elements"));
  }
  const uint8_t* p = view.data;
  switch (view.dtype) {
    case DType::kF32:
      std::memcpy(out, p + offset * 4, static_cast<size_t>(n) * 4);
      return absl::OkStatus();
    case DType::kF64:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + (offset + i) * 8, 8);
        out[i] = static_cast<float>(d);
      }
      return absl::OkStatus();
    case DType::kF16:
    case DType::kBF16: {
      const bool half = view.dtype == DType::kF16;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + (offset + i) * 2, 2);
        out[i] = half ? HalfToFloat(h) : BFloat16ToFloat(h);
      }
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor of dtype ", DTypeName(view.dtype), " is not a float tensor"));
  }
}

}  // namespace recsys
