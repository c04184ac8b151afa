#include "common/process_tuning.h"

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

// Referenced so the test links OpenBLAS (through @system//:faiss's link line)
// whatever the linker's --as-needed setting.
extern "C" int openblas_get_num_threads();

namespace recsys {
namespace {

TEST(ProcessTuningTest, SetsOpenBlasThreads) {
  ASSERT_GE(openblas_get_num_threads(), 1);
  ASSERT_TRUE(SetBlasThreads(1));
  EXPECT_EQ(openblas_get_num_threads(), 1);
  EXPECT_EQ(BlasThreads(), 1);
  ASSERT_TRUE(SetBlasThreads(2));
  EXPECT_EQ(BlasThreads(), 2);
  ASSERT_TRUE(SetBlasThreads(0));  // clamped
  EXPECT_EQ(BlasThreads(), 1);
}

TEST(ProcessTuningTest, MutexesStillWorkWithoutDeadlockDetection) {
  DisableMutexDeadlockDetection();
  absl::Mutex a, b;
  // Opposite lock orders, which the detection would report (and abort on
  // in a debug Abseil), pass once it is off.
  { absl::MutexLock la(&a); absl::MutexLock lb(&b); }
  { absl::MutexLock lb(&b); absl::MutexLock la(&a); }
  SUCCEED();
}

}  // namespace
}  // namespace recsys
