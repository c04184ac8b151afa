// Reader and writer for the safetensors format: an 8-byte little-endian
// header length N, N bytes of JSON header, then raw little-endian tensor
// bytes. The header maps tensor names to {dtype, shape, data_offsets} (offsets
// relative to the end of the header) plus an optional "__metadata__" object of
// string -> string.
//
// The reader memory-maps the file and validates everything before handing
// out a view: header size (at most 100 MB and inside the file), JSON shape and
// nesting depth, known dtypes, shape/size agreement without overflow, offsets
// inside the data section, no overlapping tensors and no unindexed bytes.
// Damaged or hostile files produce an error Status, never a crash or an
// out-of-bounds read.
//
// Thread-safety: a SafetensorsFile is immutable after Open() and may be read
// from any number of threads. Views point into the mapping and live as long
// as the SafetensorsFile.
#ifndef RECSYS_COMMON_SAFETENSORS_H_
#define RECSYS_COMMON_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// "F32", "BF16", ...
absl::string_view DTypeName(DType dtype);
absl::StatusOr<DType> ParseDType(absl::string_view name);
size_t DTypeSize(DType dtype);

struct TensorView {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // little-endian, not necessarily aligned
  size_t size_bytes = 0;

  int64_t num_elements() const;
};

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

  // Maps and validates the file at `path`.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::string& path);
  // Validates `bytes`, which the returned object takes ownership of. Used for
  // small files and by the corruption tests.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> FromBuffer(
      std::string bytes);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // Tensor names in file order (by offset).
  const std::vector<std::string>& names() const { return names_; }
  bool Contains(const std::string& name) const;
  // NOT_FOUND when absent.
  absl::StatusOr<TensorView> Get(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const {
    return metadata_;
  }

 private:
  SafetensorsFile() = default;
  absl::Status Parse(const uint8_t* data, size_t size);

  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  std::string owned_;
  std::vector<std::string> names_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors and writes one safetensors file atomically (temp file,
// fsync, rename). The bytes passed to AddTensor are copied; a streamed
// tensor's bytes are pulled from its source while the file is written, so a
// tensor larger than memory allows is never held whole.
class SafetensorsWriter {
 public:
  // Appends the next piece (any size > 0) of a streamed tensor's bytes to
  // `piece`; called until the tensor's shape x dtype bytes are complete.
  using ByteSource = std::function<absl::Status(std::string* piece)>;

  // INVALID_ARGUMENT if the name is empty, "__metadata__" or a duplicate, or
  // if `bytes` does not match shape x dtype.
  absl::Status AddTensor(const std::string& name, DType dtype,
                         std::vector<int64_t> shape, absl::string_view bytes);
  // A streamed tensor. Its source is consumed by the one Serialize() or
  // WriteFile() call; producing more or fewer bytes than shape x dtype, or an
  // error, fails that call (and WriteFile leaves `path` untouched).
  absl::Status AddTensor(const std::string& name, DType dtype,
                         std::vector<int64_t> shape, ByteSource source);
  void SetMetadata(const std::string& key, const std::string& value);

  // The complete file contents.
  absl::StatusOr<std::string> SerializeOrError() const;
  // REQUIRES: no streamed tensor (use SerializeOrError).
  std::string Serialize() const;
  absl::Status WriteFile(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t size = 0;      // bytes
    std::string bytes;      // when not streamed
    ByteSource source;      // when streamed
  };
  absl::StatusOr<uint64_t> CheckNewTensor(const std::string& name, DType dtype,
                                          const std::vector<int64_t>& shape) const;
  absl::Status WriteTo(const std::function<absl::Status(absl::string_view)>& append) const;
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// String keys (item keys) stored beside tensors as two tensors:
//   "key_bytes"   U8  [total bytes]: the keys concatenated
//   "key_offsets" I64 [n + 1]: key i is key_bytes[offsets[i] : offsets[i+1]]
// AddKeyTensors: INVALID_ARGUMENT for an empty or repeated key.
absl::Status AddKeyTensors(const std::vector<std::string>& keys,
                           SafetensorsWriter* writer);
// Reads and validates them (dtypes, n + 1 offsets when `expected_count` is
// >= 0, offsets monotone and inside key_bytes, keys non-empty and unique).
// INVALID_ARGUMENT naming the problem; NOT_FOUND when a tensor is missing.
absl::StatusOr<std::vector<std::string>> ReadKeyTensors(
    const SafetensorsFile& file, int64_t expected_count);

// IEEE half / bfloat16 <-> float conversions (round to nearest even).
float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);
float BFloat16ToFloat(uint16_t b);
uint16_t FloatToBFloat16(float f);

// Copies `n` elements of a float tensor view (F32, F16, BF16 or F64) starting
// at element `offset` into `out` as float. INVALID_ARGUMENT for other dtypes
// or a range outside the tensor.
absl::Status ReadAsFloat(const TensorView& view, int64_t offset, int64_t n,
                         float* out);

}  // namespace recsys

#endif  // RECSYS_COMMON_SAFETENSORS_H_
