// Fixed-width little-endian integers in byte strings: the length, count
// and checksum fields of the project's own file formats (the similarity
// endpoint's entries files and staging logs), the same on any host.
#ifndef RECSYS_COMMON_LITTLE_ENDIAN_H_
#define RECSYS_COMMON_LITTLE_ENDIAN_H_

#include <cstddef>
#include <string>

namespace recsys {

// Appends the sizeof(T) bytes of `v`, least significant first.
template <typename T>
void AppendLittleEndian(std::string* out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// The T stored by AppendLittleEndian at p. REQUIRES: sizeof(T) readable bytes.
template <typename T>
T ReadLittleEndian(const char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v |= static_cast<T>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}

}  // namespace recsys

#endif  // RECSYS_COMMON_LITTLE_ENDIAN_H_
