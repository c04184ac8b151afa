// Weights of the LibTorch backbones: loading Hugging Face safetensors by
// tensor name, the seeded stand-in initialisation used when no weights
// exist, export in HF naming, and a fingerprint. Includes LibTorch: include
// only from the backbone implementations.
//
// Thread-safety: functions write into the tensors they are given; callers
// serialise access to one module.
#ifndef RECSYS_MODEL_ENCODERS_MODULE_WEIGHTS_H_
#define RECSYS_MODEL_ENCODERS_MODULE_WEIGHTS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace recsys {

// (Hugging Face name without the model prefix, parameter) pairs, e.g.
// ("embeddings.word_embeddings.weight", t). Tensors are float CPU tensors.
using HfNamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Copies each tensor from the safetensors file at `path` into the matching
// parameter. A parameter "x" is looked up as prefix + "x", then "x"; for a
// "*.LayerNorm.weight"/".bias" also the old "*.LayerNorm.gamma"/".beta".
// F32, F16, BF16 and F64 tensors are accepted. Tensors of the file that
// match no parameter (pooler, heads) are ignored and counted in `unused`.
// NOT_FOUND naming the first missing tensor; INVALID_ARGUMENT naming a
// tensor whose shape differs.
absl::Status LoadHfWeights(const std::string& path, absl::string_view prefix,
                           const HfNamedTensors& params, int* unused = nullptr);

// Seeded initialisation as Hugging Face initialises a fresh model:
// LayerNorm weights 1, biases 0, everything else N(0, 0.02), drawn in the
// order of `params` from a generator seeded with `seed`. Identical on every
// machine for the same seed and architecture.
void InitStandinWeights(const HfNamedTensors& params, uint64_t seed);

// A backbone's weights: with an empty `weights_path` the seeded stand-in
// (logged as a warning: not a trained model), otherwise LoadHfWeights from
// that file (logged with the count of unused file tensors). `kind` ("BERT",
// "ViT") and `name` only label the log line; `unused_hint` says what unused
// tensors usually are.
absl::Status InitOrLoadBackboneWeights(const HfNamedTensors& params,
                                       absl::string_view kind,
                                       absl::string_view name,
                                       const std::string& weights_path,
                                       absl::string_view prefix, uint64_t seed,
                                       absl::string_view unused_hint);

// Writes the parameters as F32 safetensors named prefix + name.
absl::Status SaveHfWeights(const std::string& path, absl::string_view prefix,
                           const HfNamedTensors& params);

// 64-bit hex digest of the names, shapes and values of `params` and `extra`.
std::string FingerprintWeights(const HfNamedTensors& params,
                               absl::string_view extra);

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_MODULE_WEIGHTS_H_
