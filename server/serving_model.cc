#include "server/serving_model.h"

#include <cstring>
#include <utility>

#include <torch/torch.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/safetensors.h"
#include "common/status_macros.h"
#include "model/model_version.h"
#include "model/nn/recommender.h"
#include "model/nn/user_encoder.h"

namespace recsys {
namespace {

absl::Status Damaged(const std::string& dir, absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat("model version ", dir, " is damaged: ", what));
}

}  // namespace

struct ServingModel::Impl {
  absl::flat_hash_map<std::string, int64_t> row_of;
  torch::Tensor embeddings;  // [num_items, d] float, CPU
  UserEncoder encoder{nullptr};
};

ServingModel::ServingModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServingModel::~ServingModel() = default;

absl::StatusOr<std::unique_ptr<ServingModel>> ServingModel::Load(
    const std::string& dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<ModelVersion> version, ModelVersion::Open(dir));
  const ModelVersionManifest& manifest = version->manifest();
  ServingModelInfo info;
  info.directory = dir;
  info.version = manifest.version;
  info.model_kind = manifest.network.model;
  info.created_at = manifest.created_at;
  info.metrics_json = manifest.metrics_json;
  info.embedding_dim = manifest.network.embedding_dim;
  info.max_len = manifest.network.max_len;

  auto impl = std::make_unique<Impl>();
  ASSIGN_OR_RETURN(ItemEmbeddings items, version->ReadItemEmbeddings());
  const int64_t n = static_cast<int64_t>(items.keys.size());
  impl->row_of.reserve(items.keys.size());
  for (int64_t i = 0; i < n; ++i) impl->row_of.emplace(std::move(items.keys[i]), i);
  info.num_items = n;
  ASSIGN_OR_RETURN(auto weights, version->OpenUserEncoderWeights());
  try {
    impl->embeddings = torch::empty({n, info.embedding_dim}, torch::kFloat32);
    std::memcpy(impl->embeddings.data_ptr<float>(), items.values.data(),
                items.values.size() * sizeof(float));
    impl->encoder = UserEncoder(UserEncoderOptionsFor(manifest.network).dropout(0.0));
    impl->encoder->eval();
    torch::NoGradGuard no_grad;
    for (auto& p : impl->encoder->named_parameters(/*recurse=*/true)) {
      const std::string stored = absl::StrCat(kUserEncoderPrefix, p.key());
      absl::StatusOr<TensorView> t = weights->Get(stored);
      if (!t.ok()) return Damaged(dir, absl::StrCat("missing weight ", stored));
      if (t->dtype != DType::kF32 ||
          t->shape != std::vector<int64_t>(p.value().sizes().begin(),
                                           p.value().sizes().end())) {
        return Damaged(dir, absl::StrCat("weight ", stored,
                                         " has the wrong dtype or shape"));
      }
      std::memcpy(p.value().data_ptr<float>(), t->data, t->size_bytes);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("building the user encoder of ", dir, ": ", e.what_without_backtrace()));
  }
  auto model = std::unique_ptr<ServingModel>(new ServingModel(std::move(impl)));
  model->info_ = std::move(info);
  return model;
}

int64_t ServingModel::RowOf(const std::string& key) const {
  auto it = impl_->row_of.find(key);
  return it == impl_->row_of.end() ? -1 : it->second;
}

absl::StatusOr<std::vector<float>> ServingModel::EncodeUser(
    const std::vector<std::string>& history, int* unknown) const {
  std::vector<int64_t> rows;
  int missing = 0;
  for (const std::string& key : history) {
    const int64_t r = RowOf(key);
    if (r < 0) {
      ++missing;
    } else {
      rows.push_back(r);
    }
  }
  if (unknown != nullptr) *unknown = missing;
  if (rows.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "history: none of its ", history.size(),
        " item keys is in the catalog of model version ", info_.version));
  }
  const int64_t max_len = info_.max_len;
  if (static_cast<int64_t>(rows.size()) > max_len) {
    rows.erase(rows.begin(), rows.end() - max_len);
  }
  try {
    torch::InferenceMode inference;
    const int64_t d = info_.embedding_dim;
    // Left-padded to max_len: the newest item sits at the last position.
    torch::Tensor seq = torch::zeros({1, max_len, d});
    torch::Tensor valid = torch::zeros({1, max_len}, torch::kBool);
    const int64_t pad = max_len - static_cast<int64_t>(rows.size());
    torch::Tensor idx = torch::tensor(rows, torch::kInt64);
    seq.index_put_({0, torch::indexing::Slice(pad, max_len)},
                   impl_->embeddings.index_select(0, idx));
    valid.index_put_({0, torch::indexing::Slice(pad, max_len)}, true);
    torch::Tensor out = impl_->encoder->forward(seq, valid);
    torch::Tensor user = out.index({0, max_len - 1}).contiguous();
    const float* p = user.data_ptr<float>();
    return std::vector<float>(p, p + d);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("user encoder failed: ", e.what_without_backtrace()));
  }
}

}  // namespace recsys
