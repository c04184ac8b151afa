#include "trainer/training/step_workers.h"

#include <time.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace recsys {
namespace {

TEST(StepWorkersTest, EveryShardRunsOncePerCallOnItsOwnThread) {
  StepWorkers workers(3);
  EXPECT_EQ(workers.shards(), 3);
  for (int call = 0; call < 200; ++call) {
    std::vector<int> runs(3, 0);
    std::vector<std::thread::id> ids(3);
    workers.Run([&](int s) {
      ++runs[s];
      ids[s] = std::this_thread::get_id();
    });
    EXPECT_EQ(runs, std::vector<int>({1, 1, 1})) << "call " << call;
    EXPECT_EQ(ids[0], std::this_thread::get_id());  // shard 0: the caller
    EXPECT_NE(ids[1], ids[0]);
    EXPECT_NE(ids[2], ids[1]);
  }
}

// The shards really overlap: each waits (bounded) until all have started,
// which only returns true when they run at the same time.
// The hand-off paths: sleeping at once (spin 0), watching for a moment and
// then sleeping (1 us: most calls find the workers asleep or falling
// asleep), and the default watch. Every call runs every shard once and
// returns after all of them, whichever path each hand-off took.
TEST(StepWorkersTest, EveryHandOffPathRunsEachShardOnce) {
  for (int spin_us : {0, 1, StepWorkers::kDefaultSpinMicros}) {
    StepWorkers workers(3, /*serial=*/false, spin_us);
    std::vector<std::atomic<int>> runs(3);
    for (int call = 0; call < 2000; ++call) {
      workers.Run([&](int s) { runs[s].fetch_add(1); });
      for (int s = 0; s < 3; ++s) {
        ASSERT_EQ(runs[s].load(), call + 1) << "spin " << spin_us << " us, call " << call
                                            << ", shard " << s;
      }
    }
  }
}

TEST(StepWorkersTest, ShardsRunConcurrently) {
  StepWorkers workers(2);
  std::atomic<int> started{0};
  std::vector<bool> met(2, false);
  workers.Run([&](int s) {
    ++started;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (started.load() < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    met[s] = started.load() == 2;
  });
  EXPECT_TRUE(met[0]);
  EXPECT_TRUE(met[1]);
}

TEST(StepWorkersTest, RunReturnsOnlyAfterEveryShardFinished) {
  StepWorkers workers(2);
  std::atomic<bool> caller_done{false}, worker_done{false};
  workers.Run([&](int s) {
    if (s == 0) {
      caller_done = true;
      return;
    }
    // Shard 1 finishes only after the caller's shard has (bounded wait).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!caller_done.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    worker_done = true;
  });
  EXPECT_TRUE(worker_done.load());
}

TEST(StepWorkersTest, AShardsExceptionIsRethrownAndTheTeamStaysUsable) {
  StepWorkers workers(2);
  EXPECT_THROW(workers.Run([](int s) {
                 if (s == 1) throw std::runtime_error("shard 1 failed");
               }),
               std::runtime_error);
  int sum = 0;
  std::vector<int> seen(2, 0);
  workers.Run([&](int s) { seen[s] = s + 1; });
  for (int v : seen) sum += v;
  EXPECT_EQ(sum, 3);
}

TEST(StepWorkersTest, CountsEachShardsCpuTimeAndTheCriticalPath) {
  StepWorkers workers(2);
  // Shard 1 burns CPU until its thread has used >= 20 ms (bounded by a
  // wall deadline); shard 0 returns at once.
  workers.Run([](int s) {
    if (s == 0) return;
    timespec t0, t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    volatile double sink = 0;
    do {
      for (int i = 0; i < 10000; ++i) sink = sink + i;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1e3 + (t.tv_nsec - t0.tv_nsec) * 1e-6 < 20 &&
             std::chrono::steady_clock::now() < deadline);
  });
  const StepWorkers::CpuTimes& c = workers.cpu_times();
  ASSERT_EQ(c.per_shard.size(), 2u);
  EXPECT_GE(c.per_shard[1], 0.019);
  EXPECT_LT(c.per_shard[0], c.per_shard[1]);
  EXPECT_DOUBLE_EQ(c.critical, c.per_shard[1]);
}

TEST(StepWorkersTest, SerialRunsEveryShardInOrderOnTheCaller) {
  StepWorkers workers(3, /*serial=*/true);
  std::vector<int> order;
  std::vector<std::thread::id> ids;
  workers.Run([&](int s) {
    order.push_back(s);
    ids.push_back(std::this_thread::get_id());
  });
  EXPECT_EQ(order, std::vector<int>({0, 1, 2}));
  for (const auto& id : ids) EXPECT_EQ(id, std::this_thread::get_id());
  EXPECT_EQ(workers.cpu_times().per_shard.size(), 3u);
}

TEST(StepWorkersTest, OneShardRunsInline) {
  StepWorkers workers(1);
  std::thread::id id;
  workers.Run([&](int) { id = std::this_thread::get_id(); });
  EXPECT_EQ(id, std::this_thread::get_id());
}

}  // namespace
}  // namespace recsys
