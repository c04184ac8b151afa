// A bound on calls that run on a thread of their own (the similarity
// endpoint's CreateCollection, Publish and Evaluate: seconds each, a
// backbone in memory): a flood of them is refused instead of starting a
// thread per call until the process cannot start more and aborts.
//
// Thread-safety: thread-safe.
#ifndef RECSYS_SERVER_SIMILARITY_CALL_SLOTS_H_
#define RECSYS_SERVER_SIMILARITY_CALL_SLOTS_H_

#include <atomic>

namespace recsys {
namespace similarity {

class CallSlots {
 public:
  explicit CallSlots(int limit) : limit_(limit) {}

  // Takes a slot if fewer than limit() are taken; false (nothing taken)
  // otherwise.
  bool TryAcquire() {
    if (running_.fetch_add(1, std::memory_order_acq_rel) < limit_) return true;
    running_.fetch_sub(1, std::memory_order_acq_rel);
    return false;
  }
  // Gives back a slot TryAcquire took.
  void Release() { running_.fetch_sub(1, std::memory_order_acq_rel); }

  int limit() const { return limit_; }
  int running() const { return running_.load(std::memory_order_acquire); }

 private:
  const int limit_;
  std::atomic<int> running_{0};
};

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_CALL_SLOTS_H_
