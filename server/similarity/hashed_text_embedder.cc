#include "server/similarity/hashed_text_embedder.h"

#include <cmath>
#include <cstring>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_macros.h"
#include "model/encoders/unicode_text.h"

namespace recsys {
namespace similarity {
namespace {

constexpr char kFormat[] = "hashed_text/v1";

std::string OptionsString(const HashedTextOptions& o) {
  return absl::StrFormat("dim=%d ngrams=%d-%d word_weight=%g idf_buckets=%d "
                         "seed=%d",
                         o.dimension, o.min_ngram, o.max_ngram, o.word_weight,
                         o.idf_buckets, o.seed);
}

// The normalised words of `text` as codepoints; see the header comment.
std::vector<std::vector<uint32_t>> WordCodepoints(absl::string_view text) {
  std::vector<std::vector<uint32_t>> words(1);
  auto split = [&] {
    if (!words.back().empty()) words.emplace_back();
  };
  for (uint32_t cp : DecodeUtf8(text)) {
    if (IsBertWhitespace(cp) || IsBertPunctuation(cp)) {
      split();
      continue;
    }
    if (IsBertControl(cp) || cp == 0) continue;
    if (IsCjkCharacter(cp)) {
      split();
      words.back().push_back(cp);
      split();
      continue;
    }
    AppendLowerStripped(cp, &words.back());
  }
  if (words.back().empty()) words.pop_back();
  return words;
}

// Hashes of the features of `text`, with their counts. Word features and
// n-gram features live in different namespaces (a leading tag byte).
struct Feature {
  int count = 0;
  bool word = false;
};

absl::flat_hash_map<uint64_t, Feature> Features(absl::string_view text,
                                                const HashedTextOptions& o) {
  absl::flat_hash_map<uint64_t, Feature> features;
  const std::vector<std::vector<uint32_t>> words = WordCodepoints(text);
  std::string buf;
  std::vector<uint32_t> padded;
  for (const std::vector<uint32_t>& word : words) {
    if (o.word_weight > 0) {
      buf = "w";
      for (uint32_t cp : word) AppendUtf8(cp, &buf);
      Feature& f = features[StableHash64(buf, o.seed)];
      ++f.count;
      f.word = true;
    }
    if (o.max_ngram == 0) continue;
    padded.assign(1, '<');
    padded.insert(padded.end(), word.begin(), word.end());
    padded.push_back('>');
    const int len = static_cast<int>(padded.size());
    auto add_gram = [&](int start, int end) {
      buf = "c";
      for (int i = start; i < end; ++i) AppendUtf8(padded[i], &buf);
      ++features[StableHash64(buf, o.seed)].count;
    };
    // A padded word shorter than min_ngram is one gram: the whole of it.
    if (len < o.min_ngram) add_gram(0, len);
    for (int n = o.min_ngram; n <= o.max_ngram && n <= len; ++n) {
      for (int start = 0; start + n <= len; ++start) add_gram(start, start + n);
    }
  }
  return features;
}

size_t IdfSlot(uint64_t h, int buckets) {
  return static_cast<size_t>((h >> 24) % static_cast<uint64_t>(buckets));
}

absl::Status CheckText(absl::string_view text, const HashedTextOptions& o,
                       absl::string_view what) {
  if (static_cast<int64_t>(text.size()) > o.max_text_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", text.size(), " bytes, more than the limit of ",
                     o.max_text_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

uint64_t StableHash64(absl::string_view bytes, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ (seed * 0x9e3779b97f4a7c15ull);
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

std::vector<std::string> NormalizedWords(absl::string_view text) {
  std::vector<std::string> out;
  for (const std::vector<uint32_t>& word : WordCodepoints(text)) {
    out.push_back(EncodeUtf8(word));
  }
  return out;
}

absl::Status ValidateHashedTextOptions(const HashedTextOptions& o) {
  if (o.dimension < 16 || o.dimension > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("dimension: expected 16..4096, got ", o.dimension));
  }
  if (o.max_ngram != 0 &&
      (o.min_ngram < 1 || o.min_ngram > o.max_ngram || o.max_ngram > 8)) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_ngram/max_ngram: expected 1 <= min <= max <= 8 (or "
                     "max 0), got ",
                     o.min_ngram, "/", o.max_ngram));
  }
  if (!(o.word_weight >= 0 && o.word_weight <= 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("word_weight: expected 0..100, got ", o.word_weight));
  }
  if (o.word_weight == 0 && o.max_ngram == 0) {
    return absl::InvalidArgumentError(
        "word_weight 0 and max_ngram 0: no features left");
  }
  if (o.idf_buckets < 1024 || o.idf_buckets > (1 << 24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("idf_buckets: expected 1024..16777216, got ",
                     o.idf_buckets));
  }
  if (o.max_text_bytes < 1) {
    return absl::InvalidArgumentError("max_text_bytes: expected >= 1");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<HashedTextEmbedder>> HashedTextEmbedder::Create(
    const HashedTextOptions& options) {
  return Fit(options, {});
}

absl::StatusOr<std::unique_ptr<HashedTextEmbedder>> HashedTextEmbedder::Fit(
    const HashedTextOptions& options,
    const std::vector<std::string>& documents) {
  RETURN_IF_ERROR(ValidateHashedTextOptions(options));
  auto e = std::unique_ptr<HashedTextEmbedder>(new HashedTextEmbedder());
  e->options_ = options;
  e->document_frequency_.assign(options.idf_buckets, 0);
  absl::flat_hash_set<size_t> seen;
  for (size_t i = 0; i < documents.size(); ++i) {
    RETURN_IF_ERROR(
        CheckText(documents[i], options, absl::StrCat("documents[", i, "]")));
    seen.clear();
    for (const auto& [h, f] : Features(documents[i], options)) {
      seen.insert(IdfSlot(h, options.idf_buckets));
    }
    for (size_t slot : seen) ++e->document_frequency_[slot];
  }
  e->num_documents_ = static_cast<int64_t>(documents.size());
  e->Finish();
  return e;
}

void HashedTextEmbedder::Finish() {
  uint32_t crc = Crc32c(OptionsString(options_));
  crc = Crc32c(absl::StrCat(num_documents_), crc);
  crc = Crc32c(absl::string_view(
                   reinterpret_cast<const char*>(document_frequency_.data()),
                   document_frequency_.size() * sizeof(uint32_t)),
               crc);
  state_crc_ = crc;
  fingerprint_ = absl::StrFormat("%s %s docs=%d state=%08x", kFormat,
                                 OptionsString(options_), num_documents_, crc);
}

absl::StatusOr<std::vector<float>> HashedTextEmbedder::Embed(
    absl::string_view text) const {
  if (text.empty()) {
    return absl::InvalidArgumentError("text: empty");
  }
  RETURN_IF_ERROR(CheckText(text, options_, "text"));
  const auto features = Features(text, options_);
  if (features.empty()) {
    return absl::InvalidArgumentError(
        "text: no word characters after normalisation");
  }
  // Sum in a fixed order (by hash) so the floats do not depend on the hash
  // map's iteration order.
  std::map<uint64_t, Feature> ordered(features.begin(), features.end());
  std::vector<double> acc(options_.dimension, 0.0);
  const double n = static_cast<double>(num_documents_);
  for (const auto& [h, f] : ordered) {
    const double df = document_frequency_[IdfSlot(h, options_.idf_buckets)];
    const double idf = std::log((1 + n) / (1 + df)) + 1;
    double w = (1 + std::log(static_cast<double>(f.count))) * idf;
    if (f.word) w *= options_.word_weight;
    const size_t column = static_cast<size_t>(h % options_.dimension);
    acc[column] += (h >> 63) ? -w : w;
  }
  double sq = 0;
  for (double v : acc) sq += v * v;
  std::vector<float> out(options_.dimension, 0.0f);
  if (sq > 0) {
    const double inv = 1 / std::sqrt(sq);
    for (int i = 0; i < options_.dimension; ++i) {
      out[i] = static_cast<float>(acc[i] * inv);
    }
  }
  return out;
}

std::string HashedTextEmbedder::Serialize() const {
  SafetensorsWriter w;
  (void)w.AddTensor(
      "document_frequency", DType::kI32,
      {static_cast<int64_t>(document_frequency_.size())},
      absl::string_view(
          reinterpret_cast<const char*>(document_frequency_.data()),
          document_frequency_.size() * sizeof(uint32_t)));
  w.SetMetadata("format", kFormat);
  w.SetMetadata("dimension", absl::StrCat(options_.dimension));
  w.SetMetadata("min_ngram", absl::StrCat(options_.min_ngram));
  w.SetMetadata("max_ngram", absl::StrCat(options_.max_ngram));
  w.SetMetadata("word_weight", absl::StrFormat("%.17g", options_.word_weight));
  w.SetMetadata("idf_buckets", absl::StrCat(options_.idf_buckets));
  w.SetMetadata("max_text_bytes", absl::StrCat(options_.max_text_bytes));
  w.SetMetadata("seed", absl::StrCat(options_.seed));
  w.SetMetadata("documents", absl::StrCat(num_documents_));
  w.SetMetadata("state_crc32c", absl::StrFormat("%08x", state_crc_));
  return w.Serialize();
}

absl::StatusOr<std::unique_ptr<HashedTextEmbedder>>
HashedTextEmbedder::Deserialize(absl::string_view bytes) {
  auto file_or = SafetensorsFile::FromBuffer(std::string(bytes));
  if (!file_or.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("hashed-text state: ", file_or.status().message()));
  }
  const SafetensorsFile& file = **file_or;
  const auto& m = file.metadata();
  auto get = [&](const std::string& key) -> std::string {
    auto it = m.find(key);
    return it == m.end() ? std::string() : it->second;
  };
  if (get("format") != kFormat) {
    return absl::InvalidArgumentError(
        absl::StrCat("hashed-text state: format is not ", kFormat));
  }
  HashedTextOptions o;
  auto e = std::unique_ptr<HashedTextEmbedder>(new HashedTextEmbedder());
  uint32_t crc = 0;
  if (!absl::SimpleAtoi(get("dimension"), &o.dimension) ||
      !absl::SimpleAtoi(get("min_ngram"), &o.min_ngram) ||
      !absl::SimpleAtoi(get("max_ngram"), &o.max_ngram) ||
      !absl::SimpleAtod(get("word_weight"), &o.word_weight) ||
      !absl::SimpleAtoi(get("idf_buckets"), &o.idf_buckets) ||
      !absl::SimpleAtoi(get("max_text_bytes"), &o.max_text_bytes) ||
      !absl::SimpleAtoi(get("seed"), &o.seed) ||
      !absl::SimpleAtoi(get("documents"), &e->num_documents_) ||
      !absl::SimpleHexAtoi(get("state_crc32c"), &crc)) {
    return absl::InvalidArgumentError(
        "hashed-text state: missing or unparsable metadata");
  }
  RETURN_IF_ERROR(ValidateHashedTextOptions(o));
  e->options_ = o;
  auto view = file.Get("document_frequency");
  if (!view.ok() || view->dtype != DType::kI32 ||
      view->shape != std::vector<int64_t>{o.idf_buckets}) {
    return absl::InvalidArgumentError(
        "hashed-text state: document_frequency missing or of the wrong shape");
  }
  e->document_frequency_.resize(o.idf_buckets);
  std::memcpy(e->document_frequency_.data(), view->data, view->size_bytes);
  e->Finish();
  if (e->state_crc_ != crc) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "hashed-text state: checksum %08x does not match the recorded %08x",
        e->state_crc_, crc));
  }
  return e;
}

}  // namespace similarity
}  // namespace recsys
