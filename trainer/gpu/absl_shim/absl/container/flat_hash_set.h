// Shim (see absl/README): std::unordered_set.
#ifndef RECSYS_ABSL_SHIM_FLAT_HASH_SET_H_
#define RECSYS_ABSL_SHIM_FLAT_HASH_SET_H_
#include <unordered_set>
namespace absl {
template <class K, class H = std::hash<K>, class E = std::equal_to<K>>
using flat_hash_set = std::unordered_set<K, H, E>;
}  // namespace absl
#endif
