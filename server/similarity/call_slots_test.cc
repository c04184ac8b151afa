#include "server/similarity/call_slots.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace recsys {
namespace similarity {
namespace {

TEST(CallSlotsTest, AtMostLimitAtOnceAndReleasedSlotsAreReused) {
  CallSlots slots(2);
  EXPECT_TRUE(slots.TryAcquire());
  EXPECT_TRUE(slots.TryAcquire());
  EXPECT_FALSE(slots.TryAcquire());  // refused, and takes nothing
  EXPECT_EQ(slots.running(), 2);
  slots.Release();
  EXPECT_TRUE(slots.TryAcquire());
  EXPECT_FALSE(slots.TryAcquire());
  slots.Release();
  slots.Release();
  EXPECT_EQ(slots.running(), 0);
}

TEST(CallSlotsTest, ConcurrentCallersNeverHoldMoreThanTheLimit) {
  CallSlots slots(3);
  std::atomic<int> held{0}, most{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (!slots.TryAcquire()) {
          refused.fetch_add(1);
          continue;
        }
        const int now = held.fetch_add(1) + 1;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        held.fetch_sub(1);
        slots.Release();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), 3);
  EXPECT_EQ(slots.running(), 0);
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
