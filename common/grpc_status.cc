#include "common/grpc_status.h"

#include <string>

#include "common/user_input.h"

namespace recsys {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // The message travels in trailing metadata (peers accept 8 KB by
  // default): a longer one would reach the client as RESOURCE_EXHAUSTED
  // instead of this status. Messages quote user input truncated
  // (user_input.h); this bound is the backstop.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      TruncateMessage(status.message(), kMaxGrpcStatusMessageBytes));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace recsys
