// grpc.health.v1.Health (Check and Watch) on the callback API.
//
// Unlike grpc++'s built-in service, which reports SERVING as soon as the
// server starts, every name here is NOT_SERVING until SetStatus says
// otherwise. Check on a name never registered answers NOT_FOUND, per the
// protocol; Watch on it streams SERVICE_UNKNOWN until it is registered.
// Shutdown() sets every name NOT_SERVING, sends that to each watcher and
// ends the watch streams, so a draining server is not held up by them.
// Thread-safety: all methods are thread-safe.
#ifndef RECSYS_COMMON_HEALTH_SERVICE_H_
#define RECSYS_COMMON_HEALTH_SERVICE_H_

#include <map>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proto/health.grpc.pb.h"

namespace recsys {

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  void SetStatus(const std::string& service, bool serving)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Sets every registered name.
  void SetAll(bool serving) ABSL_LOCKS_EXCLUDED(mu_);
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // SERVING / NOT_SERVING / SERVICE_UNKNOWN.
  ServingStatus GetStatus(const std::string& service) const
      ABSL_LOCKS_EXCLUDED(mu_);

  grpc::ServerUnaryReactor* Check(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request,
      grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

  class Watcher;

 private:
  void SetLocked(const std::string& service, ServingStatus status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveWatcher(Watcher* w) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, ServingStatus> status_ ABSL_GUARDED_BY(mu_);
  std::multimap<std::string, Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace recsys

#endif  // RECSYS_COMMON_HEALTH_SERVICE_H_
