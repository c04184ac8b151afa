#include "retrieval/background_free.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace recsys {
namespace retrieval {
namespace {

struct Tracked {
  Tracked(std::atomic<int>* d, std::thread::id* t) : deleted(d), freed_on(t) {}
  ~Tracked() {
    *freed_on = std::this_thread::get_id();
    deleted->fetch_add(1);
  }
  std::atomic<int>* deleted;
  std::thread::id* freed_on;
};

TEST(BackgroundFreeTest, LastReferenceFreesOnTheBackgroundThread) {
  std::atomic<int> deleted{0};
  std::thread::id freed_on;
  std::shared_ptr<const Tracked> p =
      SharedFreedInBackground(std::make_unique<Tracked>(&deleted, &freed_on));
  std::shared_ptr<const Tracked> copy = p;
  p.reset();
  FlushBackgroundFree();
  EXPECT_EQ(deleted.load(), 0);  // a reference is still held
  copy.reset();
  FlushBackgroundFree();
  EXPECT_EQ(deleted.load(), 1);
  EXPECT_NE(freed_on, std::this_thread::get_id());
}

TEST(BackgroundFreeTest, OneThreadFreesWhoeverDropsTheLastReference) {
  std::atomic<int> deleted{0};
  std::vector<std::thread::id> freed_on(64);
  std::vector<std::shared_ptr<const Tracked>> all;
  for (auto& t : freed_on) {
    all.push_back(SharedFreedInBackground(std::make_unique<Tracked>(&deleted, &t)));
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&all, i] {
      for (size_t j = i; j < all.size(); j += 4) all[j].reset();
    });
  }
  for (auto& t : threads) t.join();
  FlushBackgroundFree();
  EXPECT_EQ(deleted.load(), 64);
  for (const auto& t : freed_on) EXPECT_EQ(t, freed_on[0]);  // one thread
  EXPECT_NE(freed_on[0], std::this_thread::get_id());
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
