#include "server/encode_batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace recsys {
namespace {

EncodeBatcher::Options Clamped(EncodeBatcher::Options o) {
  o.max_batch_size = std::max(1, o.max_batch_size);
  o.num_threads = std::max(1, o.num_threads);
  if (o.max_wait < absl::ZeroDuration()) o.max_wait = absl::ZeroDuration();
  return o;
}

}  // namespace

EncodeBatcher::EncodeBatcher(Options options, Sink sink)
    : options_(Clamped(options)), sink_(std::move(sink)) {
  for (int i = 0; i < options_.num_threads; ++i) {
    workers_.emplace_back([this] { Work(); });
  }
}

EncodeBatcher::~EncodeBatcher() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    work_.SignalAll();
  }
  for (std::thread& t : workers_) t.join();
}

void EncodeBatcher::Submit(std::shared_ptr<const ServingModel> model,
                           std::shared_ptr<EncodeTask> task) {
  task->enqueued = absl::Now();
  absl::MutexLock lock(&mu_);
  Queue& q = queues_[model.get()];
  if (q.model == nullptr) q.model = std::move(model);
  q.tasks.push_back(std::move(task));
  work_.SignalAll();
}

EncodeBatcher::Queue* EncodeBatcher::OldestLocked() {
  Queue* oldest = nullptr;
  for (auto& [unused, q] : queues_) {
    if (q.tasks.empty()) continue;
    if (oldest == nullptr || q.tasks.front()->enqueued < oldest->tasks.front()->enqueued) {
      oldest = &q;
    }
  }
  return oldest;
}

void EncodeBatcher::Work() {
  while (true) {
    std::shared_ptr<const ServingModel> model;
    std::vector<std::shared_ptr<EncodeTask>> batch;
    {
      absl::MutexLock lock(&mu_);
      Queue* q = nullptr;
      while (true) {
        q = OldestLocked();
        if (q == nullptr) {
          if (stop_) return;
          work_.Wait(&mu_);
          continue;
        }
        if (stop_ || options_.max_wait == absl::ZeroDuration() ||
            static_cast<int>(q->tasks.size()) >= options_.max_batch_size) {
          break;
        }
        // Wait for the batch to fill, no longer than max_wait after its
        // head arrived nor past the earliest deadline queued.
        absl::Time until = q->tasks.front()->enqueued + options_.max_wait;
        for (const auto& t : q->tasks) until = std::min(until, t->deadline);
        if (absl::Now() >= until) break;
        work_.WaitWithDeadline(&mu_, until);
        // Re-pick: another worker may have taken it, or an older one came.
      }
      model = q->model;
      const int n = std::min<int>(options_.max_batch_size, static_cast<int>(q->tasks.size()));
      batch.assign(q->tasks.begin(), q->tasks.begin() + n);
      q->tasks.erase(q->tasks.begin(), q->tasks.begin() + n);
      if (q->tasks.empty()) queues_.erase(model.get());
    }

    const absl::Time start = absl::Now();
    std::vector<std::vector<int64_t>> rows;
    std::vector<EncodeTask*> live;
    for (const auto& t : batch) {
      t->queue_time = start - t->enqueued;
      if (t->deadline <= start) {
        t->status = absl::DeadlineExceededError(
            absl::StrCat("deadline passed after ", absl::FormatDuration(t->queue_time),
                         " waiting for the user encoder"));
        continue;
      }
      rows.push_back(std::move(t->rows));
      live.push_back(t.get());
    }
    if (!live.empty()) {
      absl::StatusOr<std::vector<std::vector<float>>> users = model->EncodeRows(rows);
      forwards_.fetch_add(1, std::memory_order_relaxed);
      const absl::Duration took = absl::Now() - start;
      for (size_t i = 0; i < live.size(); ++i) {
        live[i]->encode_time = took;
        live[i]->batch_size = static_cast<int>(live.size());
        live[i]->rows = std::move(rows[i]);
        if (users.ok()) {
          live[i]->user = std::move((*users)[i]);
        } else {
          live[i]->status = users.status();
        }
      }
    }
    sink_(model, std::move(batch));
  }
}

}  // namespace recsys
