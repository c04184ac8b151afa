// A stand-in text "backbone" for when no BERT weights are at hand: per item,
// hashed random-projection bag-of-words states of the title, shaped like
// BERT-base CLS states ([13, 768] by default). State s mixes the mean of
// the title's unigram vectors with the mean of its bigram vectors, the bigram
// share growing with depth (a crude imitation of deeper layers seeing more
// context). Vectors come from a seeded hash of the token, so the same token
// always maps to the same vector and no vocabulary is stored.
//
// This is NOT a language model: it only says which items share title words.
// Caches it writes carry standin = "true" and a backbone name saying so.
#ifndef RECSYS_TRAINER_DATA_STANDIN_TEXT_CACHE_H_
#define RECSYS_TRAINER_DATA_STANDIN_TEXT_CACHE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/safetensors.h"
#include "model/hidden_state_cache.h"

namespace recsys {

struct StandinTextOptions {
  int num_states = 13;
  int hidden_size = 768;
  uint64_t seed = 1234;
  DType dtype = DType::kF16;
};

// Lower-cased alphanumeric tokens of `title` after decoding the common HTML
// entities (&amp; &quot; &#39; ...).
std::vector<std::string> TitleTokens(const std::string& title);

// [num_states * hidden_size] floats for one title.
std::vector<float> StandinTextStates(const std::string& title,
                                     const StandinTextOptions& options);

// What identifies the stand-in "backbone" (seed and shape, not the items):
// the cache's backbone_fingerprint.
std::string StandinBackboneFingerprint(const StandinTextOptions& options);

// Whether `info` describes a cache this stand-in wrote, and if so the options
// that reproduce its states (from its backbone_config); NOT_FOUND for a cache
// of another backbone, INVALID_ARGUMENT for a damaged config.
absl::StatusOr<StandinTextOptions> StandinTextOptionsOf(const HiddenStateCacheInfo& info);

// Reads `item_key<TAB>title` lines and writes a text cache for every item,
// with each item's content fingerprint (of its title) and the backbone
// fingerprint.
absl::Status WriteStandinTextCache(const std::string& items_tsv,
                                   const std::string& out_path,
                                   const StandinTextOptions& options);

}  // namespace recsys

#endif  // RECSYS_TRAINER_DATA_STANDIN_TEXT_CACHE_H_
