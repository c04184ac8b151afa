// Test helpers: a small synthetic two-modality catalog on disk.
#ifndef RECSYS_TRAINER_TRAIN_TEST_UTIL_H_
#define RECSYS_TRAINER_TRAIN_TEST_UTIL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "trainer/data/demo_data.h"
#include "trainer/data/interactions.h"
#include "trainer/data/item_state_store.h"

namespace recsys {

struct SyntheticCatalog {
  std::string dir;
  InteractionData data;
  std::string text_cache;
  std::string image_cache;
};

// Generates demo data with `options` under $TEST_TMPDIR/<name>.
absl::StatusOr<SyntheticCatalog> MakeSyntheticCatalog(const std::string& name,
                                                      const DemoDataOptions& options);

// A store over the given caches ("" entries are skipped).
absl::StatusOr<std::unique_ptr<ItemStateStore>> MakeStore(
    const SyntheticCatalog& catalog, bool text, bool image, LayerSelection layers);

// 96 items, 150 users, 2 categories x 2 styles, text 5 x 16, image 5 x 12.
DemoDataOptions TinyCatalogOptions();

// A fixture holding that tiny catalog and a store over both of its caches.
class TinyCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override;
  SyntheticCatalog catalog_;
  std::unique_ptr<ItemStateStore> store_;
};

}  // namespace recsys

#endif  // RECSYS_TRAINER_TRAIN_TEST_UTIL_H_
