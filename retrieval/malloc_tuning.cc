#include "retrieval/malloc_tuning.h"

#include <malloc.h>

namespace recsys {
namespace retrieval {

void ConfigureMalloc(int arena_max) {
  if (arena_max > 0) mallopt(M_ARENA_MAX, arena_max);
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  mallopt(M_TRIM_THRESHOLD, 4 << 20);
}

}  // namespace retrieval
}  // namespace recsys
