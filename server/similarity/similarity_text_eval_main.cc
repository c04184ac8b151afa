// similarity_text_eval: a proxy check of example selection on the SWORD
// Bibles. The English/Spanish verse pairs of --range are the pool; --queries
// verses drawn at random (seeded) are held out one at a time. For each, the
// k examples whose English source is most similar (hashed-text embedder
// fitted on the pool's sources) are compared with k random examples by how
// much of the query's reference Spanish translation their Spanish targets
// cover (character 3-gram Dice). With no MT system here this measures the
// mechanism the in-context selection paper relies on (similar sources bring
// useful target-side material), not translation quality.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "common/flags.h"
#include "server/similarity/hashed_text_embedder.h"
#include "server/similarity/parallel_corpus.h"
#include "model/encoders/unicode_text.h"

ABSL_FLAG(std::string, range, "Matthew 1:1-Revelation 22:21",
          "diatheke key range of the pool.");
ABSL_FLAG(int, queries, 500, "Held-out query verses.");
ABSL_FLAG(int, k, 4, "Examples per query.");

namespace recsys {
namespace similarity {
namespace {

std::map<std::u32string, int> Trigrams(const std::string& text) {
  std::u32string s;
  for (uint32_t cp : DecodeUtf8(text)) {
    std::vector<uint32_t> lowered;
    AppendLowerStripped(cp, &lowered);
    s.append(lowered.begin(), lowered.end());
  }
  std::map<std::u32string, int> grams;
  for (size_t i = 0; i + 3 <= s.size(); ++i) ++grams[s.substr(i, 3)];
  return grams;
}

// Dice of the reference's trigrams against the union of the examples'.
double Coverage(const std::map<std::u32string, int>& reference,
                const std::vector<const std::string*>& examples) {
  std::map<std::u32string, int> pooled;
  for (const std::string* e : examples) {
    for (const auto& [g, c] : Trigrams(*e)) pooled[g] = std::max(pooled[g], c);
  }
  int ref_total = 0, hit = 0;
  for (const auto& [g, c] : reference) {
    ref_total += c;
    auto it = pooled.find(g);
    if (it != pooled.end()) hit += std::min(c, it->second);
  }
  return ref_total == 0 ? 0 : static_cast<double>(hit) / ref_total;
}

int Run() {
  const auto t0 = std::chrono::steady_clock::now();
  DiathekeCorpusOptions co;
  co.range = absl::GetFlag(FLAGS_range);
  auto pairs = ReadDiathekeParallelCorpus(co);
  if (!pairs.ok()) {
    std::fprintf(stderr, "%s\n", pairs.status().ToString().c_str());
    return 1;
  }
  const double read_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<std::string> sources;
  for (const auto& p : *pairs) sources.push_back(p.source);
  const auto t1 = std::chrono::steady_clock::now();
  auto embedder = HashedTextEmbedder::Fit({}, sources);
  if (!embedder.ok()) {
    std::fprintf(stderr, "%s\n", embedder.status().ToString().c_str());
    return 1;
  }
  const int dim = (*embedder)->dimension();
  std::vector<float> vectors(sources.size() * dim);
  for (size_t i = 0; i < sources.size(); ++i) {
    auto v = (*embedder)->Embed(sources[i]);
    if (v.ok()) std::copy(v->begin(), v->end(), vectors.begin() + i * dim);
  }
  const double embed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();

  const int k = absl::GetFlag(FLAGS_k);
  const int n_queries =
      std::min<int>(absl::GetFlag(FLAGS_queries), sources.size() - k - 1);
  std::mt19937 rng(14);
  std::vector<size_t> order(sources.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  double similar_sum = 0, random_sum = 0, score_sum = 0;
  for (int qi = 0; qi < n_queries; ++qi) {
    const size_t q = order[qi];
    std::vector<std::pair<float, size_t>> scored;
    for (size_t i = 0; i < sources.size(); ++i) {
      if (i == q) continue;
      float s = 0;
      for (int j = 0; j < dim; ++j) s += vectors[q * dim + j] * vectors[i * dim + j];
      scored.push_back({s, i});
    }
    std::partial_sort(scored.begin(), scored.begin() + k, scored.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<const std::string*> similar, random;
    for (int r = 0; r < k; ++r) {
      similar.push_back(&(*pairs)[scored[r].second].target);
      score_sum += scored[r].first;
    }
    while (static_cast<int>(random.size()) < k) {
      const size_t i = rng() % sources.size();
      if (i != q) random.push_back(&(*pairs)[i].target);
    }
    const auto reference = Trigrams((*pairs)[q].target);
    similar_sum += Coverage(reference, similar);
    random_sum += Coverage(reference, random);
  }
  std::printf("pool %zu pairs (%s), %d held-out queries, k %d\n",
              sources.size(), co.range.c_str(), n_queries, k);
  std::printf("embedder %s\n", (*embedder)->fingerprint().c_str());
  std::printf("mean cosine of the selected examples: %.4f\n",
              score_sum / (n_queries * k));
  std::printf("reference-translation trigram coverage: similar %.4f, random "
              "%.4f\n",
              similar_sum / n_queries, random_sum / n_queries);
  std::printf("seconds: read %.2f, fit + embed %.2f\n", read_s, embed_s);
  return 0;
}

}  // namespace
}  // namespace similarity
}  // namespace recsys

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(argc, argv, "A proxy check of example selection on the SWORD Bibles (similar vs random examples).");
  return recsys::similarity::Run();
}
