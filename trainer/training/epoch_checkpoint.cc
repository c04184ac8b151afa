#include "trainer/training/epoch_checkpoint.h"

#include <ATen/Context.h>

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace recsys {
namespace {

constexpr char kPrefix[] = "epoch-";

std::vector<torch::Tensor> Values(const std::vector<std::pair<std::string, torch::Tensor>>& named) {
  std::vector<torch::Tensor> out;
  for (const auto& [name, t] : named) out.push_back(t.detach().cpu());
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> Named(torch::nn::Module& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : model.named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

// The CUDA device the model lives on, when it does and CUDA is present: its
// generator (dropout on the GPU) is part of the run's state there. Never
// run on these build machines (no GPU): guarded so CPU runs never touch the
// CUDA hooks.
std::optional<c10::Device> CudaDeviceOf(torch::nn::Module& model) {
  const std::vector<torch::Tensor> params = model.parameters();
  if (params.empty() || !params[0].device().is_cuda() || !torch::cuda::is_available()) {
    return std::nullopt;
  }
  return params[0].device();
}

constexpr char kCudaRngFile[] = "rng_cuda.pt";

}  // namespace

int LastCheckpointedEpoch(const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir);
  int last = 0;
  if (!names.ok()) return 0;
  for (const std::string& n : *names) {
    int e = 0;
    if (absl::StartsWith(n, kPrefix) && absl::SimpleAtoi(n.substr(sizeof(kPrefix) - 1), &e) &&
        PathExists(JoinPath(JoinPath(dir, n), "state.json"))) {
      last = std::max(last, e);
    }
  }
  return last;
}

absl::Status SaveEpochCheckpoint(const std::string& dir, const EpochLoopState& state,
                                 torch::nn::Module& model,
                                 const std::vector<std::pair<std::string, torch::Tensor>>& best,
                                 torch::optim::Optimizer& optimizer) {
  const std::string final_dir = JoinPath(dir, absl::StrCat(kPrefix, state.epoch));
  const std::string tmp = JoinPath(dir, absl::StrCat(".tmp-", kPrefix, state.epoch));
  RETURN_IF_ERROR(RemoveRecursively(tmp));
  RETURN_IF_ERROR(CreateDirectories(tmp));
  try {
    torch::save(Values(Named(model)), JoinPath(tmp, "params.pt"));
    torch::save(Values(best), JoinPath(tmp, "best.pt"));
    torch::save(optimizer, JoinPath(tmp, "optimizer.pt"));
    at::Generator gen = at::globalContext().defaultGenerator(c10::DeviceType::CPU);
    torch::Tensor rng;
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      rng = gen.get_state();
    }
    torch::save(rng, JoinPath(tmp, "rng.pt"));
    if (const std::optional<c10::Device> cuda = CudaDeviceOf(model)) {
      at::Generator cuda_gen = at::globalContext().defaultGenerator(*cuda);
      torch::Tensor cuda_rng;
      {
        std::lock_guard<std::mutex> lock(cuda_gen.mutex());
        cuda_rng = cuda_gen.get_state();
      }
      torch::save(cuda_rng, JoinPath(tmp, kCudaRngFile));
      RETURN_IF_ERROR(SyncPath(JoinPath(tmp, kCudaRngFile)));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("saving the epoch checkpoint: ", e.what_without_backtrace()));
  }
  nlohmann::json j = {{"epoch", state.epoch},
                      {"best_score", state.best_score},
                      {"since_best", state.since_best},
                      {"train_seconds", state.train_seconds},
                      {"best_names", nlohmann::json::array()},
                      {"results", state.results_json}};
  for (const auto& [name, t] : best) j["best_names"].push_back(name);
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(tmp, "state.json"), j.dump()));
  for (const char* f : {"params.pt", "best.pt", "optimizer.pt", "rng.pt"}) {
    RETURN_IF_ERROR(SyncPath(JoinPath(tmp, f)));
  }
  RETURN_IF_ERROR(RemoveRecursively(final_dir));
  RETURN_IF_ERROR(DurableRename(tmp, final_dir));
  for (int e = state.epoch - 1; e >= 1; --e) {
    const std::string old = JoinPath(dir, absl::StrCat(kPrefix, e));
    if (!PathExists(old)) break;
    RETURN_IF_ERROR(RemoveRecursively(old));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> LoadEpochCheckpoint(const std::string& dir, EpochLoopState* state,
                                         torch::nn::Module& model,
                                         std::vector<std::pair<std::string, torch::Tensor>>* best,
                                         torch::optim::Optimizer& optimizer) {
  const int epoch = LastCheckpointedEpoch(dir);
  if (epoch == 0) return false;
  const std::string d = JoinPath(dir, absl::StrCat(kPrefix, epoch));
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(JoinPath(d, "state.json")));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(absl::StrCat(d, "/state.json is not valid JSON"));
  }
  try {
    std::vector<torch::Tensor> params, best_values;
    torch::load(params, JoinPath(d, "params.pt"));
    torch::load(best_values, JoinPath(d, "best.pt"));
    auto named = Named(model);
    const std::vector<std::string> best_names = j.at("best_names").get<std::vector<std::string>>();
    if (params.size() != named.size() || best_values.size() != best_names.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(d, ": the checkpoint's parameters do not match the model"));
    }
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < named.size(); ++i) {
      if (named[i].second.sizes() != params[i].sizes()) {
        return absl::InvalidArgumentError(
            absl::StrCat(d, ": parameter ", named[i].first, " has another shape"));
      }
      named[i].second.copy_(params[i]);
    }
    best->clear();
    for (size_t i = 0; i < best_names.size(); ++i) {
      best->emplace_back(best_names[i], best_values[i].to(named[0].second.device()));
    }
    torch::load(optimizer, JoinPath(d, "optimizer.pt"));
    torch::Tensor rng;
    torch::load(rng, JoinPath(d, "rng.pt"));
    at::Generator gen = at::globalContext().defaultGenerator(c10::DeviceType::CPU);
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(rng);
    }
    // A run checkpointed on CUDA and resumed on CUDA continues its GPU
    // generator; resumed on another device type, it cannot match anyway.
    const std::optional<c10::Device> cuda = CudaDeviceOf(model);
    if (cuda && PathExists(JoinPath(d, kCudaRngFile))) {
      torch::Tensor cuda_rng;
      torch::load(cuda_rng, JoinPath(d, kCudaRngFile));
      at::Generator cuda_gen = at::globalContext().defaultGenerator(*cuda);
      std::lock_guard<std::mutex> lock(cuda_gen.mutex());
      cuda_gen.set_state(cuda_rng);
    }
  } catch (const c10::Error& e) {
    return absl::DataLossError(
        absl::StrCat("loading the epoch checkpoint ", d, ": ", e.what_without_backtrace()));
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(d, "/state.json: ", e.what()));
  }
  state->epoch = epoch;
  state->best_score = j.value("best_score", -1.0);
  state->since_best = j.value("since_best", 0);
  state->train_seconds = j.value("train_seconds", 0.0);
  state->results_json = j.value("results", "");
  return true;
}

}  // namespace recsys
