// Leave-one-out split and training windows (the IISAN / SASRec protocol).
//
// For a user with items i_1..i_n (n >= 3): the test target is i_n with
// history i_1..i_{n-1}; the validation target is i_{n-1} with history
// i_1..i_{n-2}; training sees i_1..i_{n-2} only. Users with fewer than 3
// items contribute their items to training and are not evaluated.
//
// Training windows: the training prefix is cut from its end into windows of
// at most max_len + 1 items that overlap by one item, so every training
// transition (i_t -> i_{t+1}) is predicted exactly once: a window's inputs are
// items[0..n-2] and its targets items[1..n-1].
#ifndef RECSYS_TRAINER_DATA_SEQUENCE_SPLIT_H_
#define RECSYS_TRAINER_DATA_SEQUENCE_SPLIT_H_

#include <cstdint>
#include <vector>

#include "trainer/data/interactions.h"

namespace recsys {

struct TrainWindow {
  int32_t user = 0;
  std::vector<int32_t> items;  // 2..max_len+1 items, chronological
};

struct EvalExample {
  int32_t user = 0;
  std::vector<int32_t> history;  // every earlier item (masked in ranking)
  int32_t target = 0;
};

struct LeaveOneOutSplit {
  std::vector<TrainWindow> train;
  std::vector<EvalExample> validation;
  std::vector<EvalExample> test;
  // Per item: occurrences in the training prefixes (for the popularity
  // baseline and the log-popularity correction).
  std::vector<int64_t> train_item_counts;
  // Per user: the distinct items of the training prefix, sorted (the
  // negatives the loss masks out).
  std::vector<std::vector<int32_t>> train_items_of_user;
};

// REQUIRES: max_len >= 1.
LeaveOneOutSplit SplitLeaveOneOut(const InteractionData& data, int max_len);

// The last `max_len` items of `history` (the model's input).
std::vector<int32_t> LastItems(const std::vector<int32_t>& history, int max_len);

}  // namespace recsys

#endif  // RECSYS_TRAINER_DATA_SEQUENCE_SPLIT_H_
