// HR@K and NDCG@K from the 0-based rank of each example's target under full
// ranking (leave-one-out: one relevant item per example).
//   HR@K   = mean [rank < K]
//   NDCG@K = mean [rank < K] / log2(rank + 2)
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
  // {"count":..,"hr@5":..,"ndcg@5":..,...}
  std::string ToJson() const;
};

class RankingMetrics {
 public:
  explicit RankingMetrics(std::vector<int> ks = {5, 10, 20}) : ks_(std::move(ks)) {}
  void Add(int64_t rank);
  void AddAll(const std::vector<int64_t>& ranks);
  RankingReport Report() const;

 private:
  std::vector<int> ks_;
  int64_t count_ = 0;
  std::map<int, double> hits_, gains_;
};

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAIN_RANKING_METRICS_H_
