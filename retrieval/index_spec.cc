#include "retrieval/index_spec.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/user_input.h"

namespace recsys {
namespace retrieval {
namespace {

constexpr char kGrammar[] =
    "Flat, HNSW<M>[,Flat], IVF<nlist>,Flat, IVF<nlist>,PQ<m>[x<nbits>], "
    "IVF<nlist>,SQ8|SQ4|SQfp16, PQ<m>[x<nbits>], SQ8|SQ4|SQfp16";

// Digits only (no sign, no spaces, no leading '+'); at most 9 of them.
bool ParseCount(absl::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleAtoi(s, out);
}

absl::Status Bad(absl::string_view field, absl::string_view description,
                 absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": ", why, " in ", QuoteUserInput(description),
                   "; supported: ", kGrammar));
}

// "PQ<m>[x<nbits>]" -> m, nbits.
absl::Status ParsePq(absl::string_view part, int dimension,
                     absl::string_view field, absl::string_view description,
                     IndexSpec* spec) {
  absl::string_view rest = part.substr(2);
  int64_t m = 0, nbits = 8;
  const size_t x = rest.find('x');
  if (!ParseCount(rest.substr(0, x), &m)) {
    return Bad(field, description, "PQ: expected PQ<m> with m a number");
  }
  if (x != absl::string_view::npos &&
      !ParseCount(rest.substr(x + 1), &nbits)) {
    return Bad(field, description, "PQ: expected x<nbits> with nbits a number");
  }
  if (m < 1 || m > dimension || dimension % m != 0) {
    return Bad(field, description,
               absl::StrCat("PQ<m>: m must divide the dimension ", dimension,
                            " (1..", dimension, "), got ", m));
  }
  if (nbits < kMinPqBits || nbits > kMaxPqBits) {
    return Bad(field, description,
               absl::StrCat("PQ x<nbits>: expected ", kMinPqBits, "..",
                            kMaxPqBits, ", got ", nbits));
  }
  spec->pq_m = static_cast<int>(m);
  spec->pq_nbits = static_cast<int>(nbits);
  return absl::OkStatus();
}

bool IsSq(absl::string_view part) {
  return part == "SQ8" || part == "SQ4" || part == "SQfp16";
}

}  // namespace

int64_t IndexSpec::min_training_vectors() const {
  switch (kind) {
    case Kind::kFlat:
    case Kind::kHnsw:
      return 0;
    case Kind::kSq:
      return 1;
    case Kind::kIvfFlat:
    case Kind::kIvfSq:
      return nlist;
    case Kind::kPq:
      return int64_t{1} << pq_nbits;
    case Kind::kIvfPq:
      return std::max<int64_t>(nlist, int64_t{1} << pq_nbits);
  }
  return 0;
}

absl::StatusOr<IndexSpec> ParseIndexSpec(absl::string_view description,
                                         int dimension,
                                         absl::string_view field) {
  if (description.empty() || description.size() > 64) {
    return Bad(field, description, "expected 1..64 characters");
  }
  const std::vector<absl::string_view> parts = absl::StrSplit(description, ',');
  IndexSpec spec;
  const absl::string_view first = parts[0];
  if (parts.size() > 2) return Bad(field, description, "too many components");
  if (first == "Flat" && parts.size() == 1) {
    spec.kind = IndexSpec::Kind::kFlat;
  } else if (absl::StartsWith(first, "HNSW")) {
    int64_t m = 0;
    if (!ParseCount(first.substr(4), &m)) {
      return Bad(field, description, "HNSW: expected HNSW<M> with M a number");
    }
    if (m < kMinHnswM || m > kMaxHnswM) {
      return Bad(field, description,
                 absl::StrCat("HNSW<M>: expected M in ", kMinHnswM, "..",
                              kMaxHnswM, ", got ", m));
    }
    if (parts.size() == 2 && parts[1] != "Flat") {
      return Bad(field, description, "HNSW: only Flat storage is supported");
    }
    spec.kind = IndexSpec::Kind::kHnsw;
    spec.hnsw_m = static_cast<int>(m);
  } else if (absl::StartsWith(first, "IVF")) {
    if (parts.size() != 2) {
      return Bad(field, description, "IVF<nlist> needs a second component");
    }
    int64_t nlist = 0;
    if (!ParseCount(first.substr(3), &nlist)) {
      return Bad(field, description, "IVF: expected IVF<nlist> with nlist a number");
    }
    if (nlist < 1 || nlist > kMaxNlist) {
      return Bad(field, description,
                 absl::StrCat("IVF<nlist>: expected 1..", kMaxNlist, ", got ",
                              nlist));
    }
    spec.nlist = nlist;
    if (nlist * dimension * 4 > kMaxIndexTableBytes) {
      return Bad(field, description,
                 absl::StrCat("IVF<nlist>: ", nlist, " centroids of dimension ",
                              dimension, " exceed ", kMaxIndexTableBytes >> 20,
                              " MB"));
    }
    const absl::string_view second = parts[1];
    if (second == "Flat") {
      spec.kind = IndexSpec::Kind::kIvfFlat;
    } else if (absl::StartsWith(second, "PQ")) {
      spec.kind = IndexSpec::Kind::kIvfPq;
      if (absl::Status s = ParsePq(second, dimension, field, description, &spec);
          !s.ok()) {
        return s;
      }
      const int64_t tables = nlist * spec.pq_m * (int64_t{1} << spec.pq_nbits) * 4;
      if (tables > kMaxIndexTableBytes) {
        return Bad(field, description,
                   absl::StrCat("IVF-PQ tables (nlist x m x 2^nbits floats) "
                                "would take ", tables >> 20, " MB, at most ",
                                kMaxIndexTableBytes >> 20));
      }
    } else if (IsSq(second)) {
      spec.kind = IndexSpec::Kind::kIvfSq;
      spec.sq = std::string(second);
    } else {
      return Bad(field, description,
                 "IVF: expected Flat, PQ<m>[x<nbits>], SQ8, SQ4 or SQfp16 after "
                 "the comma");
    }
  } else if (absl::StartsWith(first, "PQ") && parts.size() == 1) {
    spec.kind = IndexSpec::Kind::kPq;
    if (absl::Status s = ParsePq(first, dimension, field, description, &spec);
        !s.ok()) {
      return s;
    }
  } else if (IsSq(first) && parts.size() == 1) {
    spec.kind = IndexSpec::Kind::kSq;
    spec.sq = std::string(first);
  } else {
    return Bad(field, description, "unsupported index description");
  }
  return spec;
}

int64_t EstimateBuildBytes(const IndexSpec& spec, int dimension, int64_t n,
                           int64_t n_train) {
  const int64_t row = int64_t{4} * dimension;
  // The merged entry table and the index's own copy (or codes), plus the
  // serialized index while the snapshot is written.
  int64_t bytes = 3 * n * row;
  switch (spec.kind) {
    case IndexSpec::Kind::kFlat:
      break;
    case IndexSpec::Kind::kHnsw:
      // Level-0 links 2M ints, upper levels ~M/(M-1) more, offsets, levels,
      // plus an int8/fp16 walk copy.
      bytes += n * (int64_t{4} * 2 * spec.hnsw_m * 2 + 16 + 2 * dimension);
      break;
    case IndexSpec::Kind::kIvfFlat:
    case IndexSpec::Kind::kIvfSq:
      bytes += spec.nlist * row + n * 8 + n_train * row;
      break;
    case IndexSpec::Kind::kIvfPq:
      bytes += spec.nlist * row + n * 8 + n_train * row +
               spec.nlist * spec.pq_m * (int64_t{1} << spec.pq_nbits) * 4;
      break;
    case IndexSpec::Kind::kPq:
    case IndexSpec::Kind::kSq:
      bytes += n_train * row;
      break;
  }
  return bytes;
}

double EstimateTrainingFlops(const IndexSpec& spec, int dimension,
                             int64_t n_train) {
  auto kmeans = [&](double k, double d) {
    const double points = std::min<double>(n_train, 256.0 * k);
    return 25.0 * points * k * d;
  };
  double flops = 0;
  if (spec.nlist > 0) flops += kmeans(spec.nlist, dimension);
  if (spec.pq_m > 0) {
    flops += spec.pq_m *
             kmeans(double(int64_t{1} << spec.pq_nbits),
                    double(dimension) / spec.pq_m);
  }
  return flops;
}

}  // namespace retrieval
}  // namespace recsys
