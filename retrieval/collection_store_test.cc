#include "retrieval/collection_store.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retrieval/test_util.h"

namespace recsys {
namespace retrieval {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(CollectionStoreTest, BadOptionsAreNamed) {
  CollectionStore::Options o;
  o.data_dir = FreshTestDir("store_bad");
  for (int threads : {-1, 257, 100000}) {
    o.build_threads = threads;
    EXPECT_THAT(CollectionStore::Open(o).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("build_threads: expected 0..256")))
        << threads;
  }
  o.build_threads = 1;
  o.build_nice = 20;
  EXPECT_THAT(CollectionStore::Open(o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("build_nice")));
  o.build_nice = 10;
  o.versions_to_keep = 0;
  EXPECT_THAT(CollectionStore::Open(o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("versions_to_keep")));
  o.data_dir = "";
  o.versions_to_keep = 1;
  EXPECT_THAT(CollectionStore::Open(o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("data_dir")));
}

// One store per data directory: a second is refused (naming the holder)
// and nothing in the directory changes; once the first is gone it opens.
TEST(CollectionStoreTest, ASecondStoreOnTheSameDirectoryIsRefused) {
  CollectionStore::Options o;
  o.data_dir = FreshTestDir("store_lock");
  ASSERT_OK_AND_ASSIGN(auto first, CollectionStore::Open(o));
  ASSERT_OK(first->Create(TestConfig("c", 4)).status());
  EXPECT_THAT(CollectionStore::Open(o).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("in use"), HasSubstr(o.data_dir),
                             HasSubstr(absl::StrCat("pid ", getpid())))));
  EXPECT_EQ(first->List().size(), 1u);
  first.reset();
  ASSERT_OK_AND_ASSIGN(auto second, CollectionStore::Open(o));
  EXPECT_EQ(second->List().size(), 1u);
}

TEST(CollectionStoreTest, CreateGetDropAndReopen) {
  CollectionStore::Options o;
  o.data_dir = FreshTestDir("store");
  {
    ASSERT_OK_AND_ASSIGN(auto store, CollectionStore::Open(o));
    ASSERT_OK(store->Create(TestConfig("a", 4)).status());
    ASSERT_OK(store->Create(TestConfig("b", 8, "HNSW16", Metric::kCosine)).status());
    EXPECT_THAT(store->Create(TestConfig("a", 4)).status(),
                StatusIs(absl::StatusCode::kAlreadyExists));
    EXPECT_THAT(store->Create(TestConfig("c", 4, "Bogus")).status(),
                StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(store->Get("zzz").status(),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("'zzz'")));
    ASSERT_OK_AND_ASSIGN(auto a, store->Get("a"));
    ASSERT_OK(a->Upsert(MakeEntries(0, 5, 4, 1)));
    ASSERT_OK(a->PublishAndWait(0).status());
    ASSERT_OK_AND_ASSIGN(auto b, store->Get("b"));
    ASSERT_OK(store->Drop("b"));
    EXPECT_THAT(store->Get("b").status(), StatusIs(absl::StatusCode::kNotFound));
    EXPECT_THAT(b->Upsert(MakeEntries(0, 1, 8, 1)),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(store->Drop("b"), StatusIs(absl::StatusCode::kNotFound));
    EXPECT_EQ(store->List().size(), 1u);
  }
  ASSERT_OK_AND_ASSIGN(auto store, CollectionStore::Open(o));
  ASSERT_EQ(store->List().size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto a, store->Get("a"));
  ASSERT_OK_AND_ASSIGN(auto live, a->GetVersion(0));
  EXPECT_EQ(live->size(), 5);
  EXPECT_THAT(store->Get("b").status(), StatusIs(absl::StatusCode::kNotFound));
  // A dropped name can be created again, empty.
  ASSERT_OK_AND_ASSIGN(auto b, store->Create(TestConfig("b", 8)));
  EXPECT_EQ(b->Status().staging_entries, 0);
}

TEST(CollectionStoreTest, DropCancelsARunningBuild) {
  CollectionStore::Options o;
  o.data_dir = FreshTestDir("store_cancel");
  ASSERT_OK_AND_ASSIGN(auto store, CollectionStore::Open(o));
  ASSERT_OK_AND_ASSIGN(auto c, store->Create(TestConfig("h", 32, "HNSW32")));
  ASSERT_OK(c->Upsert(MakeEntries(0, 30000, 32, 1)));
  absl::Mutex mu;
  bool finished = false;
  absl::Status outcome;
  ASSERT_OK(c->Publish(0, [&](absl::StatusOr<VersionStatus> r) {
                absl::MutexLock l(&mu);
                outcome = r.status();
                finished = true;
              }).status());
  ASSERT_OK(store->Drop("h"));  // waits for the build to stop
  absl::MutexLock l(&mu);
  EXPECT_TRUE(finished);
  EXPECT_THAT(outcome, StatusIs(absl::StatusCode::kCancelled));
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
