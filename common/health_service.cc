#include "common/health_service.h"

#include <utility>

namespace recsys {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream. Writes are serialised: at most one in flight, and only
// the newest status is sent after it completes (intermediate ones coalesce).
class HealthService::Watcher final
    : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService* service, std::string name)
      : service_(service), name_(std::move(name)) {}

  // Queues `status` for sending; `finish` ends the stream after it.
  void Push(ServingStatus status, bool finish) ABSL_LOCKS_EXCLUDED(mu_) {
    bool start_write = false;
    bool finish_now = false;
    {
      absl::MutexLock lock(&mu_);
      if (done_) return;
      if (finish) finish_requested_ = true;
      if (status != last_sent_ || !sent_any_) {
        pending_ = status;
        has_pending_ = true;
      }
      if (!writing_) {
        if (has_pending_) {
          start_write = true;
          TakePendingLocked();
        } else if (finish_requested_ && !finished_) {
          finished_ = true;
          finish_now = true;
        }
      }
    }
    if (start_write) StartWrite(&response_);
    if (finish_now) Finish(grpc::Status::OK);
  }

  void OnWriteDone(bool ok) override {
    bool start_write = false;
    bool finish_now = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        // The client went away; OnCancel / OnDone follow.
        if (!finished_) {
          finished_ = true;
          finish_now = true;
        }
      } else if (has_pending_) {
        start_write = true;
        TakePendingLocked();
      } else if (finish_requested_ && !finished_) {
        finished_ = true;
        finish_now = true;
      }
    }
    if (start_write) StartWrite(&response_);
    if (finish_now) Finish(grpc::Status::OK);
  }

  void OnCancel() override {
    bool finish_now = false;
    {
      absl::MutexLock lock(&mu_);
      if (!finished_ && !writing_) {
        finished_ = true;
        finish_now = true;
      }
      finish_requested_ = true;
    }
    if (finish_now) Finish(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    service_->RemoveWatcher(this);
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    delete this;
  }

  const std::string& name() const { return name_; }

 private:
  void TakePendingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    response_.set_status(pending_);
    last_sent_ = pending_;
    sent_any_ = true;
    has_pending_ = false;
    writing_ = true;
  }

  HealthService* const service_;
  const std::string name_;
  absl::Mutex mu_;
  HealthCheckResponse response_;  // owned by the write in flight
  ServingStatus pending_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  ServingStatus last_sent_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

void HealthService::SetStatus(const std::string& service, bool serving) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  SetLocked(service, serving ? HealthCheckResponse::SERVING
                             : HealthCheckResponse::NOT_SERVING);
}

void HealthService::SetAll(bool serving) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  std::vector<std::string> names;
  for (const auto& [name, unused] : status_) names.push_back(name);
  for (const auto& name : names) {
    SetLocked(name, serving ? HealthCheckResponse::SERVING
                            : HealthCheckResponse::NOT_SERVING);
  }
}

void HealthService::SetLocked(const std::string& service, ServingStatus status) {
  status_[service] = status;
  auto range = watchers_.equal_range(service);
  for (auto it = range.first; it != range.second; ++it) {
    it->second->Push(status, /*finish=*/false);
  }
}

void HealthService::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (auto& [name, status] : status_) status = HealthCheckResponse::NOT_SERVING;
  for (auto& [name, watcher] : watchers_) {
    auto it = status_.find(name);
    watcher->Push(it == status_.end() ? HealthCheckResponse::SERVICE_UNKNOWN
                                      : HealthCheckResponse::NOT_SERVING,
                  /*finish=*/true);
  }
}

HealthService::ServingStatus HealthService::GetStatus(
    const std::string& service) const {
  absl::MutexLock lock(&mu_);
  auto it = status_.find(service);
  return it == status_.end() ? HealthCheckResponse::SERVICE_UNKNOWN
                             : it->second;
}

void HealthService::RemoveWatcher(Watcher* w) {
  absl::MutexLock lock(&mu_);
  auto range = watchers_.equal_range(w->name());
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second == w) {
      watchers_.erase(it);
      return;
    }
  }
}

grpc::ServerUnaryReactor* HealthService::Check(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request,
    HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const ServingStatus status = GetStatus(request->service());
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 "unknown service \"" + request->service() + "\""));
  } else {
    response->set_status(status);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request) {
  auto* watcher = new Watcher(this, request->service());
  absl::MutexLock lock(&mu_);
  watchers_.emplace(request->service(), watcher);
  auto it = status_.find(request->service());
  watcher->Push(it == status_.end() ? HealthCheckResponse::SERVICE_UNKNOWN
                                    : it->second,
                /*finish=*/shut_down_);
  return watcher;
}

}  // namespace recsys
