// Shim (see absl/README): std::unordered_map (same interface for our uses).
#ifndef RECSYS_ABSL_SHIM_FLAT_HASH_MAP_H_
#define RECSYS_ABSL_SHIM_FLAT_HASH_MAP_H_
#include <unordered_map>
namespace absl {
template <class K, class V, class H = std::hash<K>, class E = std::equal_to<K>>
using flat_hash_map = std::unordered_map<K, V, H, E>;
}  // namespace absl
#endif
