#include "retrieval/vector_index.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "faiss/IndexFlat.h"
#include "faiss/IndexHNSW.h"
#include "faiss/IndexIVF.h"
#include "faiss/IVFlib.h"
#include "faiss/impl/HNSW.h"
#include "faiss/impl/io.h"
#include "faiss/index_factory.h"
#include "faiss/index_io.h"

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

}  // namespace

VectorIndex::~VectorIndex() = default;

absl::StatusOr<std::unique_ptr<VectorIndex>> VectorIndex::Build(
    const CollectionConfig& config, const float* vectors, int64_t n,
    const ProgressFn& progress) {
  auto out = std::unique_ptr<VectorIndex>(new VectorIndex());
  out->higher_is_better_ = config.metric != Metric::kL2;
  out->description_ = config.index_factory;
  try {
    out->index_.reset(faiss::index_factory(config.dimension,
                                           config.index_factory.c_str(),
                                           FaissMetric(config.metric)));
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(out->index_.get())) {
      auto it = config.build_params.find("efConstruction");
      int ef = 0;
      if (it != config.build_params.end() && absl::SimpleAtoi(it->second, &ef)) {
        hnsw->hnsw.efConstruction = ef;
      }
    }
    if (!out->index_->is_trained) {
      int64_t n_train = n;
      if (config.max_training_vectors > 0) {
        n_train = std::min(n, config.max_training_vectors);
      }
      // FAISS's own minimum: an IVF with nlist lists needs >= nlist points
      // (it warns below 39 per list but trains).
      int64_t needed = 1;
      if (const faiss::IndexIVF* ivf =
              faiss::ivflib::try_extract_index_ivf(out->index_.get())) {
        needed = std::max<int64_t>(needed, ivf->nlist);
      }
      if (config.index_factory.find("PQ") != std::string::npos) {
        needed = std::max<int64_t>(needed, 256);  // 8-bit PQ codebooks
      }
      if (n_train < needed) {
        if (!config.flat_fallback_when_untrainable) {
          return absl::FailedPreconditionError(absl::StrCat(
              "index '", config.index_factory, "' needs at least ", needed,
              " training vectors, the version has ", n_train,
              "; add entries or set flat_fallback_when_untrainable"));
        }
        out->index_.reset(new faiss::IndexFlat(config.dimension,
                                               FaissMetric(config.metric)));
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
    const int64_t chunk = 8192;
    for (int64_t i = 0; i < n; i += chunk) {
      const int64_t m = std::min(chunk, n - i);
      if (progress && !progress(i, n, "adding")) {
        return absl::CancelledError("index build cancelled");
      }
      out->index_->add(m, vectors + i * config.dimension);
    }
    if (progress) progress(n, n, "added");
  } catch (const std::exception& e) {
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
    out->index_.reset(faiss::read_index(&reader));
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
  faiss::SearchParametersHNSW hnsw_params;
  faiss::SearchParameters plain_params;
  faiss::SearchParameters* sp = &plain_params;
  if (const faiss::IndexIVF* ivf =
          faiss::ivflib::try_extract_index_ivf(index_.get())) {
    ivf_params.nprobe = params.nprobe > 0 ? params.nprobe : ivf->nprobe;
    sp = &ivf_params;
  } else if (auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index_.get())) {
    hnsw_params.efSearch =
        params.ef_search > 0 ? params.ef_search : hnsw->hnsw.efSearch;
    sp = &hnsw_params;
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
