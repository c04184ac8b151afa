// A data directory written by the retrieval server of main at 62393ee (two
// collections, a published version each, acknowledged but unpublished
// writes in a staging log; the server was killed with -9, so no clean
// shutdown) must open with everything in it: newer servers read what older
// ones wrote. testdata/legacy_store/README.md says how it was made.
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "retrieval/collection_store.h"
#include "retrieval/test_util.h"

namespace recsys {
namespace retrieval {
namespace {

// Copies the checked-in tree (read-only runfiles) to a writable place.
void CopyTree(const std::string& from, const std::string& to) {
  ASSERT_OK(CreateDirectories(to));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListDirectory(from));
  for (const std::string& name : names) {
    const std::string src = JoinPath(from, name);
    absl::StatusOr<std::string> bytes = ReadFileToString(src);
    if (bytes.ok()) {
      ASSERT_OK(WriteFileAtomically(JoinPath(to, name), *bytes));
    } else {
      CopyTree(src, JoinPath(to, name));  // a directory
    }
  }
}

TEST(LegacyStoreTest, OpensADataDirectoryWrittenByThePreviousServer) {
  const std::string dir = FreshTestDir("legacy_store");
  CopyTree(JoinPath(std::getenv("TEST_SRCDIR"), "recsys/retrieval/testdata/legacy_store/data"),
           dir);
  CollectionStore::Options o;
  o.data_dir = dir;
  ASSERT_OK_AND_ASSIGN(auto store, CollectionStore::Open(o));
  ASSERT_EQ(store->List().size(), 2u);

  ASSERT_OK_AND_ASSIGN(auto items, store->Get("items"));
  const CollectionStatus s = items->Status();
  EXPECT_EQ(s.live_version, 3);
  ASSERT_EQ(s.versions.size(), 1u);
  EXPECT_EQ(s.versions[0].entries, 5);
  EXPECT_EQ(s.staging_entries, 5);  // +f, -a: acknowledged, not published
  ASSERT_OK_AND_ASSIGN(auto live, items->GetVersion(0));
  EXPECT_EQ(live->size(), 5);
  std::vector<std::optional<Entry>> staged = items->GetStaged({"a", "b", "f"});
  EXPECT_FALSE(staged[0].has_value());  // deleted after v3
  ASSERT_TRUE(staged[1].has_value());
  EXPECT_EQ(staged[1]->vector, (std::vector<float>{0, 1, 0, 0}));
  ASSERT_TRUE(staged[2].has_value());  // upserted after v3
  EXPECT_EQ(staged[2]->payload, (Payload{{"title", "Phi"}}));

  ASSERT_OK_AND_ASSIGN(auto docs, store->Get("docs"));
  EXPECT_EQ(docs->Status().live_version, 1);
  EXPECT_EQ(docs->config().metric, Metric::kCosine);

  // The next publish builds on it.
  ASSERT_OK_AND_ASSIGN(VersionStatus v4, items->PublishAndWait(0));
  EXPECT_EQ(v4.version, 4);
  EXPECT_EQ(v4.entries, 5);

  // Reading them sealed the old files in place: from now on they are
  // checksummed like new ones, and the store reopens with the same state.
  for (const char* file : {"docs/collection.json", "docs/LIVE",
                           "docs/versions/v00000000000000000001/MANIFEST.json"}) {
    ASSERT_OK_AND_ASSIGN(std::string text, ReadFileToString(JoinPath(dir, file)));
    EXPECT_NE(text.find("crc32c"), std::string::npos) << file;
  }
  store.reset();
  items.reset();
  docs.reset();
  ASSERT_OK_AND_ASSIGN(store, CollectionStore::Open(o));
  EXPECT_TRUE(store->Failed().empty());
  ASSERT_OK_AND_ASSIGN(items, store->Get("items"));
  EXPECT_EQ(items->Status().live_version, 4);
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
