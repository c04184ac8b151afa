#include "trainer/service/trainer_service.h"

#include <memory>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/call_metrics.h"
#include "common/grpc_status.h"
#include "common/raw_request.h"
#include "common/status_macros.h"
#include "common/validation.h"

namespace recsys {
namespace {

const CallMetrics& Calls() {
  static const CallMetrics* m = new CallMetrics("recsys_trainer", "Trainer");
  return *m;
}

// Runs `fn` (returning absl::Status), records and finishes the call.
template <typename Fn>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context, const char* method,
                                Fn fn) {
  CallRecord record(Calls(), method);
  const absl::Status status = fn();
  record.Finish(status);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

template <typename T>
absl::Status Assign(absl::StatusOr<T> value, T* out) {
  if (!value.ok()) return value.status();
  *out = std::move(*value);
  return absl::OkStatus();
}

absl::Status CheckJobId(int64_t id) {
  if (id <= 0) return InvalidField("job_id", "a job id >= 1", absl::StrCat(id));
  return absl::OkStatus();
}

class WatchReactor : public grpc::ServerWriteReactor<v1::Job> {
 public:
  WatchReactor(JobManager* jobs, int64_t job_id) : jobs_(jobs), record_(Calls(), "WatchJob") {
    absl::Status s = CheckJobId(job_id);
    absl::StatusOr<int64_t> token =
        s.ok() ? jobs_->Subscribe(job_id, [this](const v1::Job& job) { OnJob(job); })
               : absl::StatusOr<int64_t>(s);
    if (!token.ok()) {
      End(token.status());
      return;
    }
    absl::MutexLock lock(&mu_);
    token_ = *token;
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      EndLocked(absl::CancelledError("the watcher went away"));
      return;
    }
    if (finish_after_write_) {
      EndLocked(absl::OkStatus());
      return;
    }
    if (pending_) {
      WriteLocked(std::move(*pending_));
      pending_.reset();
    }
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    EndLocked(absl::CancelledError("the watcher cancelled"));
  }

  void OnDone() override {
    int64_t token;
    {
      absl::MutexLock lock(&mu_);
      token = token_;
    }
    if (token != 0) jobs_->Unsubscribe(token);
    delete this;
  }

 private:
  void OnJob(const v1::Job& job) {
    absl::MutexLock lock(&mu_);
    if (ended_ || finish_after_write_) return;
    if (writing_) {
      pending_ = job;
    } else {
      WriteLocked(job);
    }
  }

  void WriteLocked(v1::Job job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    current_ = std::move(job);
    if (IsTerminal(current_.state())) finish_after_write_ = true;
    writing_ = true;
    StartWrite(&current_);
  }

  void End(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    EndLocked(status);
  }
  void EndLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (ended_) return;
    ended_ = true;
    record_.Finish(status);
    Finish(ToGrpcStatus(status));
  }

  JobManager* const jobs_;
  CallRecord record_;
  absl::Mutex mu_;
  int64_t token_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_after_write_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  v1::Job current_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::Job> pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerUnaryReactor* TrainerService::SubmitJob(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* raw_request,
                                                    grpc::ByteBuffer* raw_response) {
  return Unary(context, "SubmitJob", [&] {
    return HandleRaw<v1::SubmitJobRequest, v1::SubmitJobResponse>(
        *raw_request, raw_response,
        [&](const v1::SubmitJobRequest& request, v1::SubmitJobResponse* response) {
          RETURN_IF_ERROR(Assign(jobs_->Submit(request.spec()), response->mutable_job()));
          response->set_job_id(response->job().id());
          return absl::OkStatus();
        });
  });
}

grpc::ServerUnaryReactor* TrainerService::GetJob(grpc::CallbackServerContext* context,
                                                 const v1::GetJobRequest* request,
                                                 v1::Job* response) {
  return Unary(context, "GetJob", [&]() -> absl::Status {
    absl::Status s = CheckJobId(request->job_id());
    return s.ok() ? Assign(jobs_->Get(request->job_id()), response) : s;
  });
}

grpc::ServerUnaryReactor* TrainerService::ListJobs(grpc::CallbackServerContext* context,
                                                   const grpc::ByteBuffer* raw_request,
                                                   grpc::ByteBuffer* raw_response) {
  return Unary(context, "ListJobs", [&] {
    return HandleRaw<v1::ListJobsRequest, v1::ListJobsResponse>(
        *raw_request, raw_response,
        [&](const v1::ListJobsRequest& request, v1::ListJobsResponse* response) {
          return Assign(jobs_->List(request), response);
        });
  });
}

grpc::ServerUnaryReactor* TrainerService::CancelJob(grpc::CallbackServerContext* context,
                                                    const v1::CancelJobRequest* request,
                                                    v1::Job* response) {
  return Unary(context, "CancelJob", [&]() -> absl::Status {
    absl::Status s = CheckJobId(request->job_id());
    return s.ok() ? Assign(jobs_->Cancel(request->job_id()), response) : s;
  });
}

grpc::ServerWriteReactor<v1::Job>* TrainerService::WatchJob(grpc::CallbackServerContext* context,
                                                            const v1::WatchJobRequest* request) {
  return new WatchReactor(jobs_, request->job_id());
}

grpc::ServerUnaryReactor* TrainerService::ListModelVersions(
    grpc::CallbackServerContext* context, const v1::ListModelVersionsRequest* request,
    v1::ListModelVersionsResponse* response) {
  return Unary(context, "ListModelVersions",
               [&] { return Assign(jobs_->ListModelVersions(), response); });
}

grpc::ServerUnaryReactor* TrainerService::PublishModelVersion(
    grpc::CallbackServerContext* context, const v1::PublishModelVersionRequest* request,
    v1::PublishModelVersionResponse* response) {
  return Unary(context, "PublishModelVersion",
               [&] { return Assign(jobs_->Publish(request->version()), response); });
}

}  // namespace recsys
