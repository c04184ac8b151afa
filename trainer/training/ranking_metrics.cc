#include "trainer/training/ranking_metrics.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace recsys {

double RankingReport::hr(int k) const {
  auto it = hit_rate.find(k);
  return it == hit_rate.end() ? 0.0 : it->second;
}

double RankingReport::ndcg_at(int k) const {
  auto it = ndcg.find(k);
  return it == ndcg.end() ? 0.0 : it->second;
}

std::string RankingReport::ToJson() const {
  std::string out = absl::StrCat("{\"count\":", count);
  for (const auto& [k, v] : hit_rate) absl::StrAppendFormat(&out, ",\"hr@%d\":%.6f", k, v);
  for (const auto& [k, v] : ndcg) absl::StrAppendFormat(&out, ",\"ndcg@%d\":%.6f", k, v);
  return out + "}";
}

void RankingMetrics::Add(int64_t rank) {
  ++count_;
  for (int k : ks_) {
    if (rank < k) {
      hits_[k] += 1.0;
      gains_[k] += 1.0 / std::log2(static_cast<double>(rank) + 2.0);
    }
  }
}

void RankingMetrics::AddAll(const std::vector<int64_t>& ranks) {
  for (int64_t r : ranks) Add(r);
}

RankingReport RankingMetrics::Report() const {
  RankingReport r;
  r.count = count_;
  for (int k : ks_) {
    const double n = count_ > 0 ? static_cast<double>(count_) : 1.0;
    auto h = hits_.find(k);
    auto g = gains_.find(k);
    r.hit_rate[k] = h == hits_.end() ? 0.0 : h->second / n;
    r.ndcg[k] = g == gains_.end() ? 0.0 : g->second / n;
  }
  return r;
}

}  // namespace recsys
