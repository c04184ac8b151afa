#include "trainer/training/one_ahead.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace recsys {
namespace {

// Values come back in order, each built once, whoever builds it: the
// helper when it gets to it first, the caller when it does not.
TEST(OneAheadTest, EveryValueInOrderOnceWhoeverBuildsIt) {
  std::atomic<int> calls{0};
  std::vector<int> built_on_helper;
  const std::thread::id caller = std::this_thread::get_id();
  OneAhead<std::string> ahead([&](int64_t k) {
    ++calls;
    if (std::this_thread::get_id() != caller) built_on_helper.push_back(static_cast<int>(k));
    return "value " + std::to_string(k);
  });
  const int n = 2000;
  for (int k = 0; k < n; ++k) {
    ahead.Start(k);
    if (k % 2 == 0) {
      // Give the helper the time to take it (bounded: it may never run).
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
      while (calls.load() <= k && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
      }
    }
    ASSERT_EQ(ahead.Take(), "value " + std::to_string(k));
  }
  EXPECT_EQ(calls.load(), n);
  EXPECT_EQ(static_cast<int64_t>(built_on_helper.size()) + ahead.built_by_caller(), n);
  // Both paths ran: the odd values are taken at once, mostly before the
  // helper wakes; the even ones were waited for.
  EXPECT_GT(ahead.built_by_caller(), 0);
  EXPECT_FALSE(built_on_helper.empty());
}

// What building a value throws reaches Take(), on either path, and the
// sequence goes on after it.
TEST(OneAheadTest, AnExceptionReachesTake) {
  std::atomic<int> calls{0};
  OneAhead<int> ahead([&](int64_t k) {
    ++calls;
    if (k == 3) throw std::runtime_error("no value 3");
    return static_cast<int>(k) * 10;
  });
  for (int k = 0; k < 6; ++k) {
    ahead.Start(k);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    while (calls.load() <= k && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    if (k == 3) {
      EXPECT_THROW(ahead.Take(), std::runtime_error);
    } else {
      EXPECT_EQ(ahead.Take(), k * 10);
    }
  }
}

// Destroyed with a value requested and not taken (a step that failed):
// it ends without hanging.
TEST(OneAheadTest, DestroyedWithAValueOutstanding) {
  for (int i = 0; i < 50; ++i) {
    OneAhead<int> ahead([](int64_t k) { return static_cast<int>(k); });
    ahead.Start(i);
  }
}

// The helper thread runs at nice 19, the caller's priority is untouched.
TEST(OneAheadTest, HelperRunsAtTheLowestPriority) {
  const int mine = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  std::atomic<int> calls{0};
  OneAhead<int> ahead([&](int64_t) {
    ++calls;
    return getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  });
  ahead.Start(0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (calls.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  const int seen = ahead.Take();
  ASSERT_EQ(ahead.built_by_caller(), 0) << "the helper did not start in 10 s";
  EXPECT_EQ(seen, 19);
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid))), mine);
}

}  // namespace
}  // namespace recsys
