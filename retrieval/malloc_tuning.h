// glibc malloc settings for a process that holds large, long-lived vector
// buffers and frees large transient ones on every publish.
#ifndef RECSYS_RETRIEVAL_MALLOC_TUNING_H_
#define RECSYS_RETRIEVAL_MALLOC_TUNING_H_

namespace recsys {
namespace retrieval {

// - arena_max > 0 sets M_ARENA_MAX (few arenas: less memory parked per
//   thread).
// - Fixed M_MMAP_THRESHOLD (1 MiB) and M_TRIM_THRESHOLD (4 MiB). By default
//   glibc raises both after a large buffer is freed (up to 32 / 64 MiB), and
//   malloc_trim() never trims the top of a non-main arena, so a publish's
//   freed entry table stayed resident (measured: RSS 1.44-1.5x the Flat
//   collection right after publish; see retrieval/README.md).
// Call once, first thing in main().
void ConfigureMalloc(int arena_max);

}  // namespace retrieval
}  // namespace recsys

#endif  // RECSYS_RETRIEVAL_MALLOC_TUNING_H_
