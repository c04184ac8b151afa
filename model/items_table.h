// The items table: the catalog as `key<TAB>value` lines, where the value is
// an item's title (text catalogs) or an image path (image catalogs). The one
// reader every component uses (the cache builder, the publisher, the
// embedding refresh), so they all agree on what a line means:
//   - lines end in "\n"; a trailing "\r" is dropped; blank lines are skipped;
//   - the first tab separates key and value (the value may hold more tabs,
//     and may be empty);
//   - a non-blank line without a tab, an empty key, a key that is not valid
//     UTF-8 or a repeated key is INVALID_ARGUMENT naming the file and line.
// No header line.
//
// Thread-safety: pure functions.
#ifndef RECSYS_MODEL_ITEMS_TABLE_H_
#define RECSYS_MODEL_ITEMS_TABLE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys {

struct ItemTableRow {
  std::string key;
  std::string value;  // raw: a title keeps its HTML entities
};

absl::StatusOr<std::vector<ItemTableRow>> ParseItemTable(absl::string_view contents,
                                                         absl::string_view source);
absl::StatusOr<std::vector<ItemTableRow>> ReadItemTable(const std::string& path);

// A catalog title for display (a payload): HTML entities decoded, cut to at
// most `max_bytes` at a UTF-8 character boundary.
std::string DisplayTitle(absl::string_view raw, size_t max_bytes = 1024);

}  // namespace recsys

#endif  // RECSYS_MODEL_ITEMS_TABLE_H_
