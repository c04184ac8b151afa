#include "trainer/training/ranking_metrics.h"

#include <algorithm>
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

namespace {

std::string JsonNumber(double v) {
  return std::isfinite(v) ? absl::StrFormat("%.6f", v) : "null";
}

}  // namespace

std::string RankingReport::ToJson() const {
  std::string out = absl::StrCat("{\"count\":", count);
  for (const auto& [k, v] : hit_rate) absl::StrAppend(&out, ",\"hr@", k, "\":", JsonNumber(v));
  for (const auto& [k, v] : ndcg) absl::StrAppend(&out, ",\"ndcg@", k, "\":", JsonNumber(v));
  return out + "}";
}

void RankingMetrics::Add(int64_t higher, int64_t tied) {
  ++count_;
  higher = std::max<int64_t>(0, higher);
  tied = std::max<int64_t>(0, tied);
  const double group = static_cast<double>(tied) + 1.0;
  for (int k : ks_) {
    if (higher >= k) continue;
    // Ranks higher .. min(higher + tied, k - 1) are hits, each with
    // probability 1 / (tied + 1).
    const int64_t last = std::min<int64_t>(k - 1, higher + tied);  // higher < k
    double gain = 0;
    for (int64_t r = higher; r <= last; ++r) gain += 1.0 / std::log2(static_cast<double>(r) + 2.0);
    hits_[k] += static_cast<double>(last - higher + 1) / group;
    gains_[k] += gain / group;
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
