#include "retrieval/search_batcher.h"

#include <utility>

#include <omp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace recsys {
namespace retrieval {

absl::StatusOr<std::unique_ptr<SearchBatcher>> SearchBatcher::Create(
    const Options& options) {
  if (options.max_batch_size < 1 || options.max_batch_size > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_batch_size: expected 1..4096, got ", options.max_batch_size));
  }
  if (options.num_threads < 1 || options.num_threads > 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_threads: expected 1..64, got ", options.num_threads));
  }
  if (options.max_wait < absl::ZeroDuration() ||
      options.max_wait > absl::Seconds(1)) {
    return absl::InvalidArgumentError("max_wait: expected 0..1s");
  }
  auto b = std::unique_ptr<SearchBatcher>(new SearchBatcher(options));
  for (int i = 0; i < options.num_threads; ++i) {
    b->threads_.emplace_back(&SearchBatcher::Loop, b.get());
  }
  return b;
}

SearchBatcher::~SearchBatcher() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  for (auto& t : threads_) t.join();
}

void SearchBatcher::Submit(std::shared_ptr<const CollectionVersion> version,
                           VersionSearchOptions options, BatchQuery query,
                           Done done) {
  Pending p{std::move(version), std::move(options), std::move(query),
            std::move(done)};
  {
    absl::MutexLock l(&mu_);
    const bool idle = queue_.empty() && running_ == 0 &&
                      options_.max_wait == absl::ZeroDuration();
    if (!(options_.run_inline_when_idle && idle)) {
      queue_.push_back(std::move(p));
      return;
    }
    ++running_;
  }
  std::vector<Pending> batch;
  batch.push_back(std::move(p));
  Run(std::move(batch));
  absl::MutexLock l(&mu_);
  --running_;
}

void SearchBatcher::Run(std::vector<Pending> batch) {
  const absl::Time now = absl::Now();
  std::vector<Pending> live;
  live.reserve(batch.size());
  for (Pending& p : batch) {
    if (p.query.deadline < now) {
      p.done(absl::DeadlineExceededError(
                 "deadline expired while the query waited for a batch"),
             0);
    } else {
      live.push_back(std::move(p));
    }
  }
  batch = std::move(live);
  if (batch.empty()) return;
  std::vector<VersionQuery> queries(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    queries[i].vector = batch[i].query.vector.data();
    queries[i].k = batch[i].query.k;
    queries[i].exclude_ids = std::move(batch[i].query.exclude_ids);
  }
  auto results = batch.front().version->Search(queries, batch.front().options);
  const int n = static_cast<int>(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    if (results.ok()) {
      batch[i].done(std::move((*results)[i]), n);
    } else {
      batch[i].done(results.status(), n);
    }
  }
}

bool SearchBatcher::SameBatch(const Pending& a, const Pending& b) {
  return a.version == b.version && a.options.nprobe == b.options.nprobe &&
         a.options.ef_search == b.options.ef_search &&
         a.options.payload_filter == b.options.payload_filter;
}

void SearchBatcher::Loop() {
  // Per-thread setting: index builds on other threads keep every core.
  if (options_.omp_threads_per_batch > 0) {
    omp_set_num_threads(options_.omp_threads_per_batch);
  }
  while (true) {
    std::vector<Pending> batch;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, and nothing left to do

      auto take_matching = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        for (auto it = queue_.begin();
             it != queue_.end() &&
             static_cast<int>(batch.size()) < options_.max_batch_size;) {
          if (batch.empty() || SameBatch(batch.front(), *it)) {
            batch.push_back(std::move(*it));
            it = queue_.erase(it);
          } else {
            ++it;
          }
        }
      };
      take_matching();
      ++running_;
      if (options_.max_wait > absl::ZeroDuration() &&
          static_cast<int>(batch.size()) < options_.max_batch_size) {
        const absl::Time deadline = absl::Now() + options_.max_wait;
        while (static_cast<int>(batch.size()) < options_.max_batch_size &&
               !stopping_) {
          auto more = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
            return stopping_ || !queue_.empty();
          };
          if (!mu_.AwaitWithDeadline(absl::Condition(&more), deadline)) break;
          const size_t before = batch.size();
          take_matching();
          if (batch.size() == before) break;  // only other keys are waiting
        }
      }
    }

    Run(std::move(batch));
    absl::MutexLock l(&mu_);
    --running_;
  }
}

}  // namespace retrieval
}  // namespace recsys

