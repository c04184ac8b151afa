#ifndef RECSYS_SERVER_SIMILARITY_TEST_ENTRIES_H_
#define RECSYS_SERVER_SIMILARITY_TEST_ENTRIES_H_

#include <cstdint>
#include <string>

#include "server/similarity/collection_record.pb.h"

namespace recsys {
namespace similarity {

// Test entry i: key "k<i>", a payload class, a source of i % 7 bytes and 5
// features, all determined by i (the entries file and staging log tests).
inline void FillTestEntry(int64_t i, StoredEntry* e) {
  e->set_key("k" + std::to_string(i));
  (*e->mutable_payload())["class"] = std::to_string(i % 3);
  e->set_source(std::string(static_cast<size_t>(i % 7), 'a'));
  for (int j = 0; j < 5; ++j) e->add_features(0.25f * i + j);
}

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_TEST_ENTRIES_H_
