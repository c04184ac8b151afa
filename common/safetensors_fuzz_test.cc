// Randomised corruption of valid safetensors files: every mutant must parse
// to a valid file or an error, never crash or read out of bounds. Built with
// AddressSanitizer + UBSan (see BUILD), so a stray read fails the test.
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/safetensors.h"
#include "gtest/gtest.h"

namespace recsys {
namespace {

std::vector<std::string> Seeds() {
  std::vector<std::string> seeds;
  {
    SafetensorsWriter w;
    std::vector<float> v(24, 0.5f);
    (void)w.AddTensor("hidden_states", DType::kF32, {2, 3, 4},
                      std::string(reinterpret_cast<char*>(v.data()), 96));
    (void)w.AddTensor("key_bytes", DType::kU8, {6}, "B001B2");
    std::vector<int64_t> off = {0, 4, 6};
    (void)w.AddTensor("key_offsets", DType::kI64, {3},
                      std::string(reinterpret_cast<char*>(off.data()), 24));
    w.SetMetadata("format", "recsys.hidden_states.v1");
    seeds.push_back(w.Serialize());
  }
  {
    SafetensorsWriter w;
    (void)w.AddTensor("a", DType::kF16, {1}, "\x00\x3c");
    (void)w.AddTensor("b", DType::kBF16, {0}, "");
    seeds.push_back(w.Serialize());
  }
  return seeds;
}

// Reads every byte of every tensor, so ASan sees any view past the buffer.
uint64_t Touch(const SafetensorsFile& f) {
  uint64_t sum = 0;
  for (const std::string& name : f.names()) {
    auto t = f.Get(name);
    if (!t.ok()) continue;
    for (size_t i = 0; i < t->size_bytes; ++i) sum += t->data[i];
  }
  return sum;
}

TEST(SafetensorsFuzzTest, RandomMutationsNeverCrash) {
  std::mt19937_64 rng(20261123);
  int accepted = 0, rejected = 0;
  for (const std::string& seed : Seeds()) {
    for (int iter = 0; iter < 4000; ++iter) {
      std::string m = seed;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        switch (rng() % 7) {
          case 0:  // flip a bit
            if (!m.empty()) m[rng() % m.size()] ^= static_cast<char>(1 << (rng() % 8));
            break;
          case 1:  // truncate
            m.resize(rng() % (m.size() + 1));
            break;
          case 2:  // overwrite a byte with a JSON-significant character
            if (!m.empty()) {
              const char kChars[] = "{}[]\",:0123456789-e.";
              m[rng() % m.size()] = kChars[rng() % (sizeof(kChars) - 1)];
            }
            break;
          case 3:  // change the header length
            if (m.size() >= 8) {
              uint64_t n;
              std::memcpy(&n, m.data(), 8);
              n += static_cast<int64_t>(rng() % 17) - 8;
              if (rng() % 8 == 0) n = rng();
              std::memcpy(&m[0], &n, 8);
            }
            break;
          case 4:  // append junk
            m.append(rng() % 16, static_cast<char>(rng()));
            break;
          case 5:  // duplicate a slice
            if (m.size() > 9) {
              size_t a = 8 + rng() % (m.size() - 8);
              size_t len = rng() % (m.size() - a + 1);
              m.insert(a, m.substr(a, len));
            }
            break;
          case 6:  // delete a slice
            if (m.size() > 9) {
              size_t a = 8 + rng() % (m.size() - 8);
              m.erase(a, rng() % (m.size() - a + 1));
            }
            break;
        }
      }
      auto f = SafetensorsFile::FromBuffer(m);
      if (f.ok()) {
        ++accepted;
        Touch(**f);
      } else {
        ++rejected;
        EXPECT_FALSE(f.status().message().empty());
      }
    }
  }
  // The mutations mostly break the file; some (e.g. metadata edits) don't.
  EXPECT_GT(rejected, 1000);
  RecordProperty("accepted", accepted);
  RecordProperty("rejected", rejected);
}

}  // namespace
}  // namespace recsys
