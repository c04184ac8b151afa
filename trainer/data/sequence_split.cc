#include "trainer/data/sequence_split.h"

#include <algorithm>

namespace recsys {

std::vector<int32_t> LastItems(const std::vector<int32_t>& history, int max_len) {
  const size_t n = std::min(history.size(), static_cast<size_t>(max_len));
  return std::vector<int32_t>(history.end() - n, history.end());
}

LeaveOneOutSplit SplitLeaveOneOut(const InteractionData& data, int max_len) {
  LeaveOneOutSplit split;
  split.train_item_counts.assign(data.num_items(), 0);
  split.train_items_of_user.resize(data.num_users());
  for (int32_t u = 0; u < data.num_users(); ++u) {
    const std::vector<int32_t>& seq = data.sequences[u];
    const size_t n = seq.size();
    size_t train_len = n;
    if (n >= 3) {
      train_len = n - 2;
      split.validation.push_back(
          {u, std::vector<int32_t>(seq.begin(), seq.begin() + n - 2), seq[n - 2]});
      split.test.push_back(
          {u, std::vector<int32_t>(seq.begin(), seq.begin() + n - 1), seq[n - 1]});
    }
    std::vector<int32_t> train(seq.begin(), seq.begin() + train_len);
    for (int32_t item : train) ++split.train_item_counts[item];
    std::vector<int32_t> distinct = train;
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    split.train_items_of_user[u] = std::move(distinct);
    // Windows from the end; consecutive windows share one item.
    int64_t end = static_cast<int64_t>(train.size());
    while (end >= 2) {
      const int64_t begin = std::max<int64_t>(0, end - (max_len + 1));
      split.train.push_back(
          {u, std::vector<int32_t>(train.begin() + begin, train.begin() + end)});
      end = begin + 1;
      if (begin == 0) break;
    }
  }
  return split;
}

}  // namespace recsys
