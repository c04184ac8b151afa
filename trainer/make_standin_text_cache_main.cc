// Builds a STAND-IN text cache from item titles (hashed bag-of-words random
// projection, trainer/data/standin_text_cache.h), for figures before the
// real BERT cache exists:
//   make_standin_text_cache --items=.../items.tsv --out=/tmp/sci_text.safetensors
#include <iostream>

#include "absl/flags/flag.h"
#include "common/flags.h"
#include "trainer/data/standin_text_cache.h"

ABSL_FLAG(std::string, items, "", "item_key<TAB>title file");
ABSL_FLAG(std::string, out, "", "cache file to write");
ABSL_FLAG(int, num_states, 13, "states per item (layers + 1)");
ABSL_FLAG(int, hidden_size, 768, "width");
ABSL_FLAG(uint64_t, seed, 1234, "hash seed");

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(argc, argv, "A STAND-IN text cache from item titles (hashed bag of words).\n  make_standin_text_cache --items=items.tsv --out=text.safetensors");
  recsys::StandinTextOptions o;
  o.num_states = absl::GetFlag(FLAGS_num_states);
  o.hidden_size = absl::GetFlag(FLAGS_hidden_size);
  o.seed = absl::GetFlag(FLAGS_seed);
  if (absl::GetFlag(FLAGS_items).empty() || absl::GetFlag(FLAGS_out).empty()) {
    std::cerr << "--items and --out are required\n";
    return 2;
  }
  absl::Status s = recsys::WriteStandinTextCache(absl::GetFlag(FLAGS_items),
                                                 absl::GetFlag(FLAGS_out), o);
  if (!s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  std::cout << "wrote stand-in text cache " << absl::GetFlag(FLAGS_out) << "\n";
  return 0;
}
