// Throughput of the BERT text backbone on real titles: titles per second at
// a given batch size and max length (CPU by default).
//
//   bazel run //trainer/backbone:text_encoder_bench --
//     --items=/path/items.tsv --vocab=/path/vocab.txt --layers=12
//     --hidden=768 --heads=12 --titles=1024
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/flags.h"
#include "common/logging.h"
#include "model/encoders/bert_text_encoder.h"
#include "trainer/backbone/cache_builder.h"
#include "model/encoders/torch_runtime.h"

ABSL_FLAG(std::string, items, "", "key<TAB>title TSV");
ABSL_FLAG(std::string, vocab, "", "vocab.txt");
ABSL_FLAG(std::string, weights, "", "model.safetensors (empty: stand-in)");
ABSL_FLAG(int32_t, layers, 6, "layers");
ABSL_FLAG(int32_t, hidden, 256, "width");
ABSL_FLAG(int32_t, heads, 4, "attention heads");
ABSL_FLAG(int32_t, titles, 1024, "titles to encode (after one warm-up batch)");
ABSL_FLAG(int32_t, batch_size, 64, "titles per forward pass");
ABSL_FLAG(int32_t, max_length, 30, "tokens per title");
ABSL_FLAG(int32_t, threads, 0, "LibTorch threads (0: default)");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda");

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(argc, argv, "Titles per second of the BERT text backbone.\n  text_encoder_bench --items=items.tsv --vocab=vocab.txt");
  recsys::SetTorchThreads(absl::GetFlag(FLAGS_threads));
  recsys::BertTextEncoderOptions o;
  o.vocab_path = absl::GetFlag(FLAGS_vocab);
  o.weights_path = absl::GetFlag(FLAGS_weights);
  o.config.num_hidden_layers = absl::GetFlag(FLAGS_layers);
  o.config.hidden_size = absl::GetFlag(FLAGS_hidden);
  o.config.num_attention_heads = absl::GetFlag(FLAGS_heads);
  o.config.intermediate_size = 4 * o.config.hidden_size;
  o.batch_size = absl::GetFlag(FLAGS_batch_size);
  o.max_length = absl::GetFlag(FLAGS_max_length);
  o.device = absl::GetFlag(FLAGS_device);
  auto encoder = recsys::CreateBertTextEncoder(o);
  if (!encoder.ok()) {
    LOG(ERROR) << encoder.status();
    return 1;
  }
  auto items = recsys::ReadItemTable(absl::GetFlag(FLAGS_items));
  if (!items.ok()) {
    LOG(ERROR) << items.status();
    return 1;
  }
  std::vector<std::string> titles;
  const size_t want = absl::GetFlag(FLAGS_titles) + o.batch_size;
  for (size_t i = 0; i < want && i < items->size(); ++i) {
    titles.push_back((*items)[i].value);
  }
  std::vector<std::string> warmup(titles.begin(), titles.begin() + o.batch_size);
  titles.erase(titles.begin(), titles.begin() + o.batch_size);
  if (!(*encoder)->Encode(warmup).ok()) return 1;
  const absl::Time start = absl::Now();
  auto states = (*encoder)->Encode(titles);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (!states.ok()) {
    LOG(ERROR) << states.status();
    return 1;
  }
  std::printf("%s threads=%d batch=%d max_length=%d: %zu titles in %.2f s = %.1f titles/s\n",
              (*encoder)->info().name.c_str(), recsys::TorchThreads(),
              o.batch_size, o.max_length, titles.size(), seconds,
              titles.size() / seconds);
  return 0;
}
