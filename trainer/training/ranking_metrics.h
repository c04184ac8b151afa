// HR@K and NDCG@K from the 0-based rank of each example's target under full
// ranking (leave-one-out: one relevant item per example).
//   HR@K   = mean [rank < K]
//   NDCG@K = mean [rank < K] / log2(rank + 2)
// Ties: an example whose target ties with `tied` other items, `higher` items
// scoring strictly above, counts with the expectation of both metrics under a
// uniformly random order of the tie group: its rank is equally likely to be
// any of higher .. higher + tied. (Ranking ties in the target's favour would
// give a constant-score model HR@K = 1.)
#ifndef RECSYS_TRAINER_TRAIN_RANKING_METRICS_H_
#define RECSYS_TRAINER_TRAIN_RANKING_METRICS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace recsys {

struct RankingReport {
  int64_t count = 0;
  std::map<int, double> hit_rate;  // K -> HR@K
  std::map<int, double> ndcg;      // K -> NDCG@K

  double hr(int k) const;
  double ndcg_at(int k) const;
  // {"count":..,"hr@5":..,"ndcg@5":..,...}; a non-finite value is written as
  // null, so the line is always valid JSON.
  std::string ToJson() const;
};

class RankingMetrics {
 public:
  explicit RankingMetrics(std::vector<int> ks = {5, 10, 20}) : ks_(std::move(ks)) {}
  // An exact rank (no ties).
  void Add(int64_t rank) { Add(rank, 0); }
  // `higher` items strictly above the target, `tied` others level with it.
  void Add(int64_t higher, int64_t tied);
  void AddAll(const std::vector<int64_t>& ranks);
  RankingReport Report() const;

 private:
  std::vector<int> ks_;
  int64_t count_ = 0;
  std::map<int, double> hits_, gains_;
};

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAIN_RANKING_METRICS_H_
