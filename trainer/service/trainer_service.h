// gRPC transport of the Trainer service (proto/trainer.proto): each handler
// checks the request, calls the JobManager, converts the status once and
// records the call's metrics. WatchJob streams the job's state (the current
// one first, then every change, coalescing changes that arrive while a write
// is in flight) and finishes after writing a final state.
//
// Thread-safety: thread-safe; the JobManager must outlive the service.
#ifndef RECSYS_TRAINER_SERVICE_TRAINER_SERVICE_H_
#define RECSYS_TRAINER_SERVICE_TRAINER_SERVICE_H_

#include "grpcpp/grpcpp.h"
#include "proto/trainer.grpc.pb.h"
#include "trainer/service/job_manager.h"

namespace recsys {

// SubmitJob carries callers' paths and names and is registered raw
// (common/raw_request.h): a path that is not UTF-8 (a Latin-1 file name,
// say) is INVALID_ARGUMENT naming it, not gRPC's bare UNIMPLEMENTED.
class TrainerService final
    : public v1::Trainer::WithRawCallbackMethod_SubmitJob<
          v1::Trainer::WithRawCallbackMethod_ListJobs<v1::Trainer::CallbackService>> {
 public:
  explicit TrainerService(JobManager* jobs) : jobs_(jobs) {}

  // Raw: a SubmitJobRequest in, a SubmitJobResponse out.
  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request, v1::Job* response) override;
  // Raw: a ListJobsRequest in (its page_token is the caller's string), a
  // ListJobsResponse out.
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerWriteReactor<v1::Job>* WatchJob(grpc::CallbackServerContext* context,
                                              const v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* ListModelVersions(
      grpc::CallbackServerContext* context, const v1::ListModelVersionsRequest* request,
      v1::ListModelVersionsResponse* response) override;
  grpc::ServerUnaryReactor* PublishModelVersion(
      grpc::CallbackServerContext* context, const v1::PublishModelVersionRequest* request,
      v1::PublishModelVersionResponse* response) override;

 private:
  JobManager* const jobs_;
};

}  // namespace recsys

#endif  // RECSYS_TRAINER_SERVICE_TRAINER_SERVICE_H_
