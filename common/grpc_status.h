// The one place where absl::Status and grpc::Status are converted.
#ifndef RECSYS_COMMON_GRPC_STATUS_H_
#define RECSYS_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace recsys {

// Longest status message ToGrpcStatus passes on (cut at a UTF-8 boundary).
inline constexpr size_t kMaxGrpcStatusMessageBytes = 2048;

// Same code, same message (at most kMaxGrpcStatusMessageBytes). Both enums
// share gRPC's numbering.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace recsys

#endif  // RECSYS_COMMON_GRPC_STATUS_H_
