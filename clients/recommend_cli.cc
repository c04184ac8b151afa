// recommend_cli: asks a recommendation server for the next items.
//   recommend_cli --server=127.0.0.1:PORT --history=B001,B002 --k=10 [--version=N]
//   recommend_cli --server=127.0.0.1:PORT --list_models
// Prints one JSON object per line.
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/flags.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "proto/recommender.grpc.pb.h"

ABSL_FLAG(std::string, server, "", "host:port of the recommendation server.");
ABSL_FLAG(std::string, history, "", "Comma-separated item keys, oldest first.");
ABSL_FLAG(int, k, 10, "How many items.");
ABSL_FLAG(int64_t, version, 0, "Model version to pin (0: live).");
ABSL_FLAG(bool, list_models, false, "List the loaded model versions instead.");
ABSL_FLAG(std::string, similar_to, "",
          "An item key: items like it (SimilarItems) instead of a recommendation.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "Deadline.");

namespace {

using recsys::v1::Recommender;

nlohmann::json ItemsJson(const google::protobuf::RepeatedPtrField<recsys::v1::RecommendedItem>& items) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& item : items) {
    nlohmann::json j = {{"key", item.key()}, {"score", item.score()}};
    auto t = item.payload().find("title");
    if (t != item.payload().end()) j["title"] = t->second;
    out.push_back(j);
  }
  return out;
}

grpc::Status ListModels(Recommender::Stub& stub, grpc::ClientContext* ctx, nlohmann::json* out) {
  recsys::v1::ListModelsResponse resp;
  grpc::Status status = stub.ListModels(ctx, recsys::v1::ListModelsRequest(), &resp);
  (*out)["models"] = nlohmann::json::array();
  for (const auto& m : resp.models()) {
    (*out)["models"].push_back({{"version", m.model().version()},
                                {"live", m.live()},
                                {"kind", m.model_kind()},
                                {"items", m.num_items()},
                                {"metrics", nlohmann::json::parse(m.metrics_json(), nullptr, false)}});
  }
  return status;
}

grpc::Status SimilarItems(Recommender::Stub& stub, grpc::ClientContext* ctx, nlohmann::json* out) {
  recsys::v1::SimilarItemsRequest req;
  req.set_item_key(absl::GetFlag(FLAGS_similar_to));
  req.set_k(absl::GetFlag(FLAGS_k));
  req.mutable_model()->set_version(absl::GetFlag(FLAGS_version));
  recsys::v1::SimilarItemsResponse resp;
  grpc::Status status = stub.SimilarItems(ctx, req, &resp);
  (*out)["model_version"] = resp.model().version();
  (*out)["items"] = ItemsJson(resp.items());
  return status;
}

grpc::Status Recommend(Recommender::Stub& stub, grpc::ClientContext* ctx, nlohmann::json* out) {
  recsys::v1::RecommendRequest req;
  for (const auto& key : absl::StrSplit(absl::GetFlag(FLAGS_history), ',', absl::SkipEmpty())) {
    req.add_history(std::string(key));
  }
  req.set_k(absl::GetFlag(FLAGS_k));
  req.mutable_model()->set_version(absl::GetFlag(FLAGS_version));
  recsys::v1::RecommendResponse resp;
  grpc::Status status = stub.Recommend(ctx, req, &resp);
  (*out)["model_version"] = resp.model().version();
  (*out)["unknown_history_items"] = resp.unknown_history_items();
  (*out)["fallback"] = recsys::v1::Fallback_Name(resp.fallback());
  (*out)["items"] = ItemsJson(resp.items());
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(argc, argv, "Asks a recommendation server for the next items.\n  recommend_cli --server=127.0.0.1:PORT --history=B001,B002 --k=10 [--version=N]");
  auto stub = Recommender::NewStub(grpc::CreateChannel(
      absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
  nlohmann::json out;
  const grpc::Status status =
      absl::GetFlag(FLAGS_list_models)            ? ListModels(*stub, &ctx, &out)
      : !absl::GetFlag(FLAGS_similar_to).empty() ? SimilarItems(*stub, &ctx, &out)
                                                  : Recommend(*stub, &ctx, &out);
  if (!status.ok()) {
    std::cerr << "recommend_cli: " << status.error_code() << " " << status.error_message()
              << "\n";
    return 1;
  }
  // Titles are user data: replace invalid UTF-8 rather than throw.
  std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
            << "\n";
  return 0;
}
