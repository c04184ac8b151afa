#include "model/encoders/module_weights.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstring>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_macros.h"
#include "model/encoders/torch_util.h"

namespace recsys {
namespace {

std::vector<std::string> Candidates(absl::string_view prefix,
                                    const std::string& name) {
  std::vector<std::string> names = {absl::StrCat(prefix, name), name};
  auto add_old = [&](absl::string_view suffix, absl::string_view old) {
    if (absl::EndsWith(name, suffix)) {
      const std::string base(name.substr(0, name.size() - suffix.size()));
      names.push_back(absl::StrCat(prefix, base, old));
      names.push_back(absl::StrCat(base, old));
    }
  };
  add_old("LayerNorm.weight", "LayerNorm.gamma");
  add_old("LayerNorm.bias", "LayerNorm.beta");
  return names;
}

bool IsLayerNormWeight(const std::string& name) {
  return absl::StrContains(absl::AsciiStrToLower(name), "layernorm") &&
         absl::EndsWith(name, ".weight");
}

}  // namespace

absl::Status LoadHfWeights(const std::string& path, absl::string_view prefix,
                           const HfNamedTensors& params, int* unused) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                   SafetensorsFile::Open(path));
  std::set<std::string> used;
  for (const auto& [name, param] : params) {
    const std::vector<std::string> candidates = Candidates(prefix, name);
    const std::string* found = nullptr;
    for (const std::string& c : candidates) {
      if (file->Contains(c)) {
        found = &c;
        break;
      }
    }
    if (found == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          path, " lacks tensor ", candidates[0], " (also tried ",
          absl::StrJoin(candidates.begin() + 1, candidates.end(), ", "), ")"));
    }
    ASSIGN_OR_RETURN(TensorView view, file->Get(*found));
    if (view.shape != param.sizes().vec()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", *found, " in ", path, " has shape [",
          absl::StrJoin(view.shape, ","), "], the config expects [",
          absl::StrJoin(param.sizes().vec(), ","), "]"));
    }
    torch::Tensor dst = param.detach();
    if (!dst.is_contiguous() || dst.scalar_type() != torch::kFloat ||
        !dst.device().is_cpu()) {
      return absl::InternalError(
          absl::StrCat("parameter ", name, " is not a contiguous float CPU tensor"));
    }
    RETURN_IF_ERROR(ReadAsFloat(view, 0, view.num_elements(),
                                dst.data_ptr<float>()));
    used.insert(*found);
  }
  if (unused != nullptr) {
    *unused = static_cast<int>(file->names().size() - used.size());
  }
  return absl::OkStatus();
}

absl::Status InitOrLoadBackboneWeights(const HfNamedTensors& params,
                                       absl::string_view kind,
                                       absl::string_view name,
                                       const std::string& weights_path,
                                       absl::string_view prefix, uint64_t seed,
                                       absl::string_view unused_hint) {
  if (weights_path.empty()) {
    InitStandinWeights(params, seed);
    TORCH_TU_LOG(WARNING) << kind << " backbone " << name
                          << ": no weights given, using the seeded STAND-IN "
                             "(seed "
                          << seed << "), not a trained model";
    return absl::OkStatus();
  }
  int unused = 0;
  RETURN_IF_ERROR(LoadHfWeights(weights_path, prefix, params, &unused));
  TORCH_TU_LOG(INFO) << kind << " backbone " << name << ": loaded "
                     << params.size() << " tensors from " << weights_path
                     << " (" << unused << " unused, e.g. " << unused_hint
                     << ")";
  return absl::OkStatus();
}

void InitStandinWeights(const HfNamedTensors& params, uint64_t seed) {
  torch::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& [name, param] : params) {
    torch::Tensor t = param.detach();
    if (absl::EndsWith(name, ".bias")) {
      t.zero_();
    } else if (IsLayerNormWeight(name)) {
      t.fill_(1.0);
    } else {
      t.normal_(0.0, 0.02, gen);
    }
  }
}

absl::Status SaveHfWeights(const std::string& path, absl::string_view prefix,
                           const HfNamedTensors& params) {
  SafetensorsWriter writer;
  for (const auto& [name, param] : params) {
    torch::Tensor t = param.detach().to(torch::kCPU, torch::kFloat).contiguous();
    RETURN_IF_ERROR(writer.AddTensor(
        absl::StrCat(prefix, name), DType::kF32, t.sizes().vec(),
        absl::string_view(static_cast<const char*>(t.data_ptr()),
                          t.numel() * sizeof(float))));
  }
  writer.SetMetadata("format", "pt");
  return writer.WriteFile(path);
}

std::string FingerprintWeights(const HfNamedTensors& params,
                               absl::string_view extra) {
  // Two CRC-32C streams with different seeds make a 64-bit digest.
  uint32_t a = Crc32c(extra, 0x9E3779B9u);
  uint32_t b = Crc32c(extra, 0x85EBCA6Bu);
  for (const auto& [name, param] : params) {
    torch::Tensor t = param.detach().to(torch::kCPU, torch::kFloat).contiguous();
    const std::string head =
        absl::StrCat(name, "[", absl::StrJoin(t.sizes().vec(), ","), "]");
    const absl::string_view data(static_cast<const char*>(t.data_ptr()),
                                 t.numel() * sizeof(float));
    a = Crc32c(data, Crc32c(head, a));
    b = Crc32c(head, Crc32c(data, b));
  }
  return absl::StrFormat("%08x%08x", a, b);
}

}  // namespace recsys
