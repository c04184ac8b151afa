#include "retrieval/background_free.h"

#include <deque>
#include <thread>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace recsys {
namespace retrieval {
namespace {

class Freer {
 public:
  Freer() : thread_([this] { Loop(); }) { thread_.detach(); }

  void Schedule(std::function<void()> fn) {
    absl::MutexLock l(&mu_);
    queue_.push_back(std::move(fn));
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> fn;
      {
        absl::MutexLock l(&mu_);
        mu_.Await(absl::Condition(
            +[](std::deque<std::function<void()>>* q) { return !q->empty(); },
            &queue_));
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// Never destroyed: versions may be released during static destruction.
Freer& Default() {
  static Freer* freer = new Freer();
  return *freer;
}

}  // namespace

void ScheduleBackgroundFree(std::function<void()> free_fn) {
  Default().Schedule(std::move(free_fn));
}

void FlushBackgroundFree() {
  absl::Notification done;
  ScheduleBackgroundFree([&done] { done.Notify(); });
  done.WaitForNotification();
}

}  // namespace retrieval
}  // namespace recsys
