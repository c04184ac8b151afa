#include "trainer/training/test_util.h"

#include <cstdlib>

#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/test_paths.h"

namespace recsys {

absl::StatusOr<SyntheticCatalog> MakeSyntheticCatalog(const std::string& name,
                                                      const DemoDataOptions& options) {
  SyntheticCatalog c;
  c.dir = TestTempPath(name);
  RETURN_IF_ERROR(WriteDemoData(GenerateDemoData(options), options, c.dir));
  ASSIGN_OR_RETURN(c.data, LoadInteractions(JoinPath(c.dir, "users.tsv")));
  c.text_cache = JoinPath(c.dir, "text_states.safetensors");
  c.image_cache = JoinPath(c.dir, "image_states.safetensors");
  return c;
}

absl::StatusOr<std::unique_ptr<ItemStateStore>> MakeStore(const SyntheticCatalog& c,
                                                          bool text, bool image,
                                                          LayerSelection layers) {
  ItemStateStore::Options o;
  if (text) o.cache_paths.push_back(c.text_cache);
  if (image) o.cache_paths.push_back(c.image_cache);
  o.layers = layers;
  return ItemStateStore::Create(o, c.data.item_keys);
}

DemoDataOptions TinyCatalogOptions() {
  DemoDataOptions o;
  o.num_items = 96;
  o.num_users = 150;
  o.num_categories = 2;
  o.num_styles = 2;
  o.text_states = 5;
  o.text_hidden = 16;
  o.image_states = 5;
  o.image_hidden = 12;
  return o;
}

void TinyCatalogTest::SetUp() {
  absl::StatusOr<SyntheticCatalog> c = MakeSyntheticCatalog("tiny", TinyCatalogOptions());
  ASSERT_TRUE(c.ok()) << c.status();
  catalog_ = *std::move(c);
  absl::StatusOr<std::unique_ptr<ItemStateStore>> s = MakeStore(catalog_, true, true, {});
  ASSERT_TRUE(s.ok()) << s.status();
  store_ = *std::move(s);
}

}  // namespace recsys
