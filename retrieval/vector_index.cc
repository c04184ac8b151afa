#include "retrieval/vector_index.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <queue>
#include <vector>

#include "absl/strings/numbers.h"
#include "faiss/impl/DistanceComputer.h"
#include "absl/strings/str_cat.h"
#include "faiss/IndexFlat.h"
#include "faiss/IndexHNSW.h"
#include "faiss/IndexIVF.h"
#include "faiss/IndexIVFPQ.h"
#include "faiss/IndexPQ.h"
#include "faiss/IVFlib.h"
#include "faiss/impl/AuxIndexStructures.h"
#include "faiss/impl/HNSW.h"
#include "faiss/impl/io.h"
#include "faiss/index_factory.h"
#include "faiss/index_io.h"
#include "retrieval/distance_kernels.h"
#include "retrieval/fast_flat_index.h"
#include "retrieval/index_spec.h"

namespace recsys {
namespace retrieval {
namespace {

// Reads FAISS's serialization straight out of a buffer we already hold
// (faiss::VectorIOReader would need another copy).
struct StringViewReader : faiss::IOReader {
  explicit StringViewReader(absl::string_view d) : data(d) {}
  size_t operator()(void* ptr, size_t size, size_t nitems) override {
    if (size == 0) return 0;
    size_t avail = (data.size() - pos) / size;
    size_t n = std::min(avail, nitems);
    std::memcpy(ptr, data.data() + pos, n * size);
    pos += n * size;
    return n;
  }
  absl::string_view data;
  size_t pos = 0;
};

// FAISS's training loops (k-means) poll one process-wide InterruptCallback
// from the thread that called train(). Ours asks that thread's build (its
// progress function: cancelled or out of time) whether to stop; threads
// without a build never interrupt.
thread_local const VectorIndex::ProgressFn* t_build_progress = nullptr;
thread_local bool t_interrupted = false;

struct BuildInterrupt : faiss::InterruptCallback {
  bool want_interrupt() override {
    if (t_build_progress == nullptr || !*t_build_progress) return false;
    if (!(*t_build_progress)(0, 0, "training")) t_interrupted = true;
    return t_interrupted;
  }
};

void InstallBuildInterrupt() {
  static const bool installed = [] {
    std::lock_guard<std::mutex> l(faiss::InterruptCallback::lock);
    faiss::InterruptCallback::instance.reset(new BuildInterrupt());
    return true;
  }();
  (void)installed;
}

faiss::MetricType FaissMetric(Metric m) {
  return m == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
}

const faiss::IndexFlat* FlatStorage(const faiss::Index* index) {
  if (auto* flat = dynamic_cast<const faiss::IndexFlat*>(index)) return flat;
  if (auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index)) {
    return dynamic_cast<const faiss::IndexFlat*>(hnsw->storage);
  }
  return nullptr;
}

// Prefetches every cache line of [p, p + bytes). Rows need not start on a
// line (glibc's mmapped blocks start 16 bytes into a page), so a 128-byte
// row can touch three lines: stepping 64 bytes from p would miss the last.
inline void PrefetchLines(const void* p, size_t bytes) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63};
  const uintptr_t last = reinterpret_cast<uintptr_t>(p) + bytes - 1;
  for (uintptr_t line = first; line <= last; line += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(line));
  }
}

// HNSW search with a per-call efSearch. FAISS 1.7.3 (Debian 12) mixes
// SearchParametersHNSW::efSearch with the index's own efSearch member
// (measured: params efSearch=500 gives lower recall than 10), and setting
// the member would mutate a shared index. So the wrapper walks the graph
// itself through FAISS's public pieces: the storage's distance computer,
// the levels and neighbour tables. Same algorithm as HNSW::search: greedy
// descent on the upper levels, then a best-first search on level 0 with a
// candidate list of size ef. The selector filters results, not the walk.
void SearchHnsw(const faiss::IndexHNSW& index, const float* x, int64_t k,
                int ef, const faiss::IDSelector* selector, float* distances,
                int64_t* labels) {
  using Node = std::pair<float, int>;  // (distance, id); smaller is closer
  const faiss::HNSW& hnsw = index.hnsw;
  const bool ip = index.metric_type == faiss::METRIC_INNER_PRODUCT;
  std::fill(labels, labels + k, -1);
  std::fill(distances, distances + k,
            ip ? -std::numeric_limits<float>::infinity()
               : std::numeric_limits<float>::infinity());
  if (hnsw.entry_point < 0) return;
  // FastFlat storage: read the vectors directly with our kernels (no
  // virtual call per distance) and prefetch a node's neighbours before
  // scoring them; any other storage goes through FAISS's distance computer.
  const auto* fast = dynamic_cast<const FastFlatIndex*>(index.storage);
  const float* base = fast != nullptr ? fast->get_xb() : nullptr;
  const int dim = static_cast<int>(index.d);
  std::unique_ptr<faiss::DistanceComputer> dc;
  if (fast == nullptr) {
    dc.reset(index.storage->get_distance_computer());
    dc->set_query(x);
  }
  // With a walk copy (int8 or fp16) the walk reads a quarter or half of
  // the bytes per node; the candidates are reranked with the exact rows at
  // the end.
  const uint16_t* half = fast != nullptr ? fast->half() : nullptr;
  const int8_t* int8 = fast != nullptr ? fast->int8() : nullptr;
  const bool approximate = half != nullptr || int8 != nullptr;
  // Inner products on int8 rows take the query scaled per dimension.
  thread_local std::vector<float> scaled;
  if (int8 != nullptr && ip) {
    scaled.resize(dim);
    for (int j = 0; j < dim; ++j) scaled[j] = x[j] * fast->int8_scale()[j];
  }
  auto exact = [&](int id) {
    if (base != nullptr) {
      const float* v = base + static_cast<int64_t>(id) * dim;
      return ip ? -InnerProduct(x, v, dim) : L2Squared(x, v, dim);
    }
    const float s = (*dc)(id);
    return ip ? -s : s;
  };
  auto dist = [&](int id) {
    const int64_t offset = static_cast<int64_t>(id) * dim;
    if (int8 != nullptr) {
      return ip ? -InnerProductInt8(scaled.data(), int8 + offset, dim)
                : L2SquaredInt8(x, fast->int8_scale(), int8 + offset, dim);
    }
    if (half != nullptr) {
      return ip ? -InnerProductHalf(x, half + offset, dim)
                : L2SquaredHalf(x, half + offset, dim);
    }
    return exact(id);
  };
  const int row_bytes =
      int8 != nullptr ? dim : dim * static_cast<int>(half != nullptr ? 2 : 4);
  auto prefetch = [&](int id) {
    if (base == nullptr) return;
    const int64_t offset = static_cast<int64_t>(id) * dim;
    PrefetchLines(int8 != nullptr   ? static_cast<const void*>(int8 + offset)
                  : half != nullptr ? static_cast<const void*>(half + offset)
                                    : static_cast<const void*>(base + offset),
                  row_bytes);
  };
  int nearest = hnsw.entry_point;
  float d_nearest = dist(nearest);
  for (int level = hnsw.max_level; level >= 1; --level) {
    for (bool moved = true; moved;) {
      moved = false;
      size_t begin, end;
      hnsw.neighbor_range(nearest, level, &begin, &end);
      for (size_t i = begin; i < end; ++i) {
        const int v = hnsw.neighbors[i];
        if (v < 0) break;
        const float d = dist(v);
        if (d < d_nearest) {
          nearest = v;
          d_nearest = d;
          moved = true;
        }
      }
    }
  }
  ef = std::max<int>(ef, static_cast<int>(k));
  std::priority_queue<Node, std::vector<Node>, std::greater<Node>> candidates;
  std::priority_queue<Node> top;      // the ef closest seen (max-heap)
  std::priority_queue<Node> results;  // the k closest accepted (max-heap)
  // Visited marks: one bit per vector, reused by the thread and cleared per
  // search. A bit (125 KB per million vectors) stays in L2; FAISS's byte
  // per vector (1 MB) missed L2 on every neighbour check, and that miss
  // cost as much as scoring the neighbour.
  thread_local std::vector<uint64_t> marks;
  const size_t words = (static_cast<size_t>(index.ntotal) + 63) / 64;
  if (marks.size() < words) marks.resize(words);
  std::fill(marks.begin(), marks.begin() + words, 0);
  auto first_visit = [&](int id) {
    uint64_t& word = marks[static_cast<uint32_t>(id) >> 6];
    const uint64_t bit = uint64_t{1} << (id & 63);
    if (word & bit) return false;
    word |= bit;
    return true;
  };
  // Approximate walks keep ef accepted candidates for the exact rerank.
  const int64_t keep = approximate ? std::max<int64_t>(k, ef) : k;
  // Without a selector the results are the best of `top`, which already
  // holds the ef best nodes visited: no second heap to maintain.
  auto consider = [&](int id, float d) {
    if (selector == nullptr) return;
    if (selector->is_member(id)) {
      if (static_cast<int64_t>(results.size()) < keep ||
          d < results.top().first) {
        results.emplace(d, id);
        if (static_cast<int64_t>(results.size()) > keep) results.pop();
      }
    }
  };
  first_visit(nearest);
  candidates.emplace(d_nearest, nearest);
  top.emplace(d_nearest, nearest);
  consider(nearest, d_nearest);
  while (!candidates.empty()) {
    const Node c = candidates.top();
    if (static_cast<int>(top.size()) >= ef && c.first > top.top().first) break;
    candidates.pop();
    // The next candidate is most likely the current best one left: start
    // loading where its neighbour list is while this one is expanded.
    if (!candidates.empty()) {
      __builtin_prefetch(&hnsw.offsets[candidates.top().second]);
    }
    size_t begin, end;
    hnsw.neighbor_range(c.second, 0, &begin, &end);
    PrefetchLines(&hnsw.neighbors[begin], (end - begin) * sizeof(int));
    // Unvisited neighbours first (their rows prefetched), then scores: the
    // memory loads overlap instead of each distance waiting on one.
    thread_local std::vector<int> fresh;
    fresh.resize(end - begin);
    int n_fresh = 0;
    for (size_t i = begin; i < end; ++i) {
      const int v = hnsw.neighbors[i];
      if (v < 0) break;
      if (!first_visit(v)) continue;
      prefetch(v);
      fresh[n_fresh++] = v;
    }
    // By now the next candidate's offset has arrived: start on its list.
    if (!candidates.empty()) {
      size_t nb, ne;
      hnsw.neighbor_range(candidates.top().second, 0, &nb, &ne);
      PrefetchLines(&hnsw.neighbors[nb], (ne - nb) * sizeof(int));
    }
    for (int f = 0; f < n_fresh; ++f) {
      const int v = fresh[f];
      const float d = dist(v);
      if (static_cast<int>(top.size()) < ef || d < top.top().first) {
        candidates.emplace(d, v);
        top.emplace(d, v);
        if (static_cast<int>(top.size()) > ef) top.pop();
      }
      consider(v, d);
    }
  }
  if (selector == nullptr) {
    while (static_cast<int64_t>(top.size()) > keep) top.pop();
    results = std::move(top);
  }
  if (approximate) {
    std::vector<Node> rescored;
    rescored.reserve(results.size());
    for (; !results.empty(); results.pop()) {
      const float* row = base + static_cast<int64_t>(results.top().second) * dim;
      PrefetchLines(row, dim * sizeof(float));
      rescored.push_back(results.top());
    }
    for (Node& n : rescored) n.first = exact(n.second);
    std::sort(rescored.begin(), rescored.end());
    if (static_cast<int64_t>(rescored.size()) > k) rescored.resize(k);
    for (const Node& n : rescored) results.push(n);
  }
  for (int64_t i = static_cast<int64_t>(results.size()) - 1; i >= 0; --i) {
    labels[i] = results.top().second;
    distances[i] = ip ? -results.top().first : results.top().first;
    results.pop();
  }
}

// After build or load, before the index is shared: the walk copy for HNSW
// over FastFlat storage (build_params hnsw_walk: int8 by default, fp16, or
// fp32 for none; fp16 falls back to int8 on CPUs without F16C), then the
// big arrays into huge pages.
void PrepareForSearch(const CollectionConfig& config, faiss::Index* index) {
  if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index)) {
    if (auto* fast = dynamic_cast<FastFlatIndex*>(hnsw->storage)) {
      auto it = config.build_params.find("hnsw_walk");
      const std::string walk =
          it != config.build_params.end() ? it->second : "int8";
      bool built = false;
      if (walk == "fp16") {
        built = fast->BuildWalkCopy(FastFlatIndex::WalkCopy::kHalf);
      }
      if (!built && walk != "fp32") {
        fast->BuildWalkCopy(FastFlatIndex::WalkCopy::kInt8);
      }
    }
  }
  MoveToHugePages(index);
}

}  // namespace

VectorIndex::~VectorIndex() = default;

absl::StatusOr<std::unique_ptr<VectorIndex>> VectorIndex::Build(
    const CollectionConfig& config, const float* vectors, int64_t n,
    const ProgressFn& progress) {
  // Only descriptions of the supported grammar reach FAISS (index_spec.h):
  // this is what keeps a bad one from crashing the process.
  absl::StatusOr<IndexSpec> spec =
      ParseIndexSpec(config.index_factory, config.dimension);
  if (!spec.ok()) return spec.status();
  auto out = std::unique_ptr<VectorIndex>(new VectorIndex());
  out->higher_is_better_ = config.metric != Metric::kL2;
  out->description_ = config.index_factory;
  InstallBuildInterrupt();
  t_build_progress = &progress;
  t_interrupted = false;
  struct Reset {
    ~Reset() { t_build_progress = nullptr; }
  } reset;
  try {
    out->index_.reset(UseFastFlat(faiss::index_factory(
        config.dimension, config.index_factory.c_str(),
        FaissMetric(config.metric))));
    // index_factory turns on polysemous training for PQ codes: a simulated
    // annealing over code permutations that took 30 s to minutes on a few
    // hundred 8-d vectors (measured). Searches here never use polysemous
    // filtering, so it is pure cost.
    if (auto* pq = dynamic_cast<faiss::IndexPQ*>(out->index_.get())) {
      pq->do_polysemous_training = false;
      pq->search_type = faiss::IndexPQ::ST_PQ;
    }
    if (auto* ivfpq = dynamic_cast<faiss::IndexIVFPQ*>(out->index_.get())) {
      ivfpq->do_polysemous_training = false;
    }
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(out->index_.get())) {
      auto it = config.build_params.find("efConstruction");
      int ef = 0;
      if (it != config.build_params.end() && absl::SimpleAtoi(it->second, &ef)) {
        hnsw->hnsw.efConstruction = ef;
      }
      // The default efSearch is part of the version: set before any reader.
      it = config.build_params.find("efSearch");
      if (it != config.build_params.end() && absl::SimpleAtoi(it->second, &ef)) {
        hnsw->hnsw.efSearch = ef;
      }
    }
    if (!out->index_->is_trained) {
      int64_t n_train = n;
      if (config.max_training_vectors > 0) {
        n_train = std::min(n, config.max_training_vectors);
      }
      // FAISS's own minimum: an IVF with nlist lists needs >= nlist points
      // (it warns below 39 per list but trains).
      const int64_t needed = std::max<int64_t>(1, spec->min_training_vectors());
      if (n_train < needed) {
        if (!config.flat_fallback_when_untrainable) {
          return absl::FailedPreconditionError(absl::StrCat(
              "index '", config.index_factory, "' needs at least ", needed,
              " training vectors, the version has ", n_train,
              "; add entries or set flat_fallback_when_untrainable"));
        }
        out->index_ = std::make_unique<FastFlatIndex>(
            config.dimension, FaissMetric(config.metric));
        out->description_ = "Flat";
      } else {
        if (progress && !progress(0, n, "training")) {
          return absl::CancelledError("index build cancelled");
        }
        std::vector<float> sample;
        const float* train = vectors;
        if (n_train < n) {
          sample.resize(static_cast<size_t>(n_train) * config.dimension);
          for (int64_t i = 0; i < n_train; ++i) {
            const int64_t row = i * n / n_train;
            std::memcpy(&sample[i * config.dimension],
                        vectors + row * config.dimension,
                        sizeof(float) * config.dimension);
          }
          train = sample.data();
        }
        out->index_->train(n_train, train);
      }
    }
    // Small enough that progress and cancellation (drop, shutdown) react
    // within a second or two even for HNSW on two cores.
    const int64_t chunk = 2048;
    for (int64_t i = 0; i < n; i += chunk) {
      const int64_t m = std::min(chunk, n - i);
      if (progress && !progress(i, n, "adding")) {
        return absl::CancelledError("index build cancelled");
      }
      out->index_->add(m, vectors + i * config.dimension);
    }
    if (progress) progress(n, n, "added");
    PrepareForSearch(config, out->index_.get());
  } catch (const std::exception& e) {
    if (t_interrupted) return absl::CancelledError("index build cancelled");
    return absl::InternalError(absl::StrCat("FAISS failed to build '",
                                            config.index_factory, "' over ",
                                            n, " vectors: ", e.what()));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<VectorIndex>> VectorIndex::Deserialize(
    const CollectionConfig& config, absl::string_view bytes) {
  auto out = std::unique_ptr<VectorIndex>(new VectorIndex());
  out->higher_is_better_ = config.metric != Metric::kL2;
  try {
    StringViewReader reader(bytes);
    out->index_.reset(UseFastFlat(faiss::read_index(&reader)));
    PrepareForSearch(config, out->index_.get());
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat("FAISS cannot read the index: ", e.what()));
  }
  if (out->index_->d != config.dimension) {
    return absl::DataLossError(absl::StrCat("index has dimension ",
                                            out->index_->d, ", expected ",
                                            config.dimension));
  }
  // A version built with the Flat fallback reads back as a plain IndexFlat.
  out->description_ =
      dynamic_cast<const faiss::IndexFlat*>(out->index_.get()) != nullptr
          ? std::string("Flat")
          : config.index_factory;
  return out;
}

absl::StatusOr<std::string> VectorIndex::Serialize() const {
  try {
    faiss::VectorIOWriter writer;
    faiss::write_index(index_.get(), &writer);
    return std::string(writer.data.begin(), writer.data.end());
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("FAISS cannot write the index: ", e.what()));
  }
}

absl::Status VectorIndex::Search(const float* queries, int64_t nq, int k,
                                 const IndexSearchParams& params,
                                 float* distances, int64_t* labels) const {
  faiss::SearchParametersIVF ivf_params;
  faiss::SearchParameters plain_params;
  faiss::SearchParametersPQ pq_params;
  faiss::SearchParameters* sp = &plain_params;
  if (auto* pq = dynamic_cast<const faiss::IndexPQ*>(index_.get())) {
    // IndexPQ refuses any other parameter type ("invalid search params").
    pq_params.search_type = pq->search_type;
    pq_params.polysemous_ht = pq->polysemous_ht;
    sp = &pq_params;
  } else if (const faiss::IndexIVF* ivf =
          faiss::ivflib::try_extract_index_ivf(index_.get())) {
    ivf_params.nprobe = params.nprobe > 0 ? params.nprobe : ivf->nprobe;
    sp = &ivf_params;
  } else if (auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index_.get())) {
    const int ef = params.ef_search > 0 ? params.ef_search : hnsw->hnsw.efSearch;
    try {
      // Sequential on purpose: a batch runs on one batcher thread, leaving
      // the other core to gRPC (see search_batcher.h).
      for (int64_t q = 0; q < nq; ++q) {
        SearchHnsw(*hnsw, queries + q * hnsw->d, k, ef, params.selector,
                   distances + q * k, labels + q * k);
      }
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("FAISS HNSW search failed on '",
                                              description_, "': ", e.what()));
    }
    return absl::OkStatus();
  }
  sp->sel = const_cast<faiss::IDSelector*>(params.selector);
  try {
    static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "idx_t");
    index_->search(nq, queries, k, distances,
                   reinterpret_cast<faiss::Index::idx_t*>(labels), sp);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("FAISS search failed on '",
                                            description_, "': ", e.what()));
  }
  return absl::OkStatus();
}

int64_t VectorIndex::size() const { return index_->ntotal; }
int VectorIndex::dimension() const { return index_->d; }

const float* VectorIndex::raw_vectors() const {
  const faiss::IndexFlat* flat = FlatStorage(index_.get());
  return flat != nullptr ? flat->get_xb() : nullptr;
}

int64_t VectorIndex::memory_bytes() const {
  const faiss::Index* index = index_.get();
  int64_t bytes = 0;
  if (auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index)) {
    bytes += hnsw->hnsw.neighbors.size() * sizeof(hnsw->hnsw.neighbors[0]) +
             hnsw->hnsw.levels.size() * sizeof(int) +
             hnsw->hnsw.offsets.size() * sizeof(size_t);
    index = hnsw->storage;
  }
  if (auto* fast = dynamic_cast<const FastFlatIndex*>(index)) {
    bytes += fast->walk_copy_bytes();
  }
  if (auto* codes = dynamic_cast<const faiss::IndexFlatCodes*>(index)) {
    return bytes + codes->codes.size();
  }
  if (const faiss::IndexIVF* ivf = faiss::ivflib::try_extract_index_ivf(index)) {
    for (size_t l = 0; l < ivf->nlist; ++l) {
      bytes += ivf->invlists->list_size(l) *
               (ivf->code_size + sizeof(faiss::Index::idx_t));
    }
    return bytes + ivf->quantizer->ntotal * ivf->d * sizeof(float);
  }
  return bytes + index->ntotal * index->d * sizeof(float);
}

}  // namespace retrieval
}  // namespace recsys
