#include "server/serving_model.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <utility>

#include <torch/torch.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/safetensors.h"
#include "common/status_macros.h"
#include "model/model_version.h"
#include "model/nn/recommender.h"
#include "model/nn/user_encoder.h"
#include "server/user_encoder_kernel.h"

namespace recsys {
namespace {

absl::Status Damaged(const std::string& dir, absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat("model version ", dir, " is damaged: ", what));
}

}  // namespace

struct ServingModel::Impl {
  absl::flat_hash_map<std::string, int64_t> row_of;
  std::vector<std::string> keys;
  std::vector<float> popularity;      // per row; empty: no table
  std::vector<int64_t> popular_rows;  // by descending popularity
  torch::Tensor embeddings;  // [num_items, d] float, CPU
  // The encoder's weights as the serving kernel holds them (built from the
  // LibTorch module the weights were loaded into, which is then dropped).
  std::unique_ptr<UserEncoderKernel> kernel;
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
  for (int64_t i = 0; i < n; ++i) impl->row_of.emplace(items.keys[i], i);
  impl->keys = std::move(items.keys);
  info.num_items = n;
  ASSIGN_OR_RETURN(impl->popularity, version->ReadItemPopularity());
  if (!impl->popularity.empty()) {
    impl->popular_rows.resize(n);
    std::iota(impl->popular_rows.begin(), impl->popular_rows.end(), 0);
    const std::vector<float>& pop = impl->popularity;
    std::stable_sort(impl->popular_rows.begin(), impl->popular_rows.end(),
                     [&pop](int64_t a, int64_t b) { return pop[a] > pop[b]; });
  }
  ASSIGN_OR_RETURN(auto weights, version->OpenUserEncoderWeights());
  try {
    impl->embeddings = torch::empty({n, info.embedding_dim}, torch::kFloat32);
    std::memcpy(impl->embeddings.data_ptr<float>(), items.values.data(),
                items.values.size() * sizeof(float));
    UserEncoder encoder(UserEncoderOptionsFor(manifest.network).dropout(0.0));
    encoder->eval();
    torch::NoGradGuard no_grad;
    for (auto& p : encoder->named_parameters(/*recurse=*/true)) {
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
    absl::StatusOr<std::unique_ptr<UserEncoderKernel>> kernel = UserEncoderKernel::Create(*encoder);
    if (!kernel.ok()) return Damaged(dir, kernel.status().message());
    impl->kernel = std::move(*kernel);
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

const std::string& ServingModel::KeyOf(int64_t row) const { return impl_->keys[row]; }

const float* ServingModel::ItemVector(int64_t row) const {
  return impl_->embeddings.data_ptr<float>() + row * info_.embedding_dim;
}

bool ServingModel::has_popularity() const { return !impl_->popularity.empty(); }

const std::vector<int64_t>& ServingModel::PopularRows() const { return impl_->popular_rows; }

float ServingModel::PopularityOf(int64_t row) const {
  return impl_->popularity.empty() ? 0.0f : impl_->popularity[row];
}

std::vector<int64_t> ServingModel::KnownRows(const std::vector<std::string>& history,
                                             int* unknown) const {
  std::vector<int64_t> rows;
  rows.reserve(history.size());
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
  return rows;
}

absl::StatusOr<std::vector<float>> ServingModel::EncodeUser(
    const std::vector<std::string>& history, int* unknown) const {
  std::vector<int64_t> rows = KnownRows(history, unknown);
  if (rows.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "history: none of its ", history.size(),
        " item keys is in the catalog of model version ", info_.version));
  }
  ASSIGN_OR_RETURN(std::vector<std::vector<float>> users, EncodeRows({std::move(rows)}));
  return std::move(users[0]);
}

absl::StatusOr<std::vector<std::vector<float>>> ServingModel::EncodeRows(
    const std::vector<std::vector<int64_t>>& users) const {
  const int64_t max_len = info_.max_len;
  const int64_t d = info_.embedding_dim;
  const int64_t b = static_cast<int64_t>(users.size());
  std::vector<std::vector<float>> out;
  if (b == 0) return out;
  // Left-padded to max_len: each user's newest item sits at the last
  // position, which is the output read.
  std::vector<float> seq(b * max_len * d, 0.0f);  // padding rows are zero
  std::vector<uint8_t> valid(b * max_len, 0);
  const float* table = impl_->embeddings.data_ptr<float>();
  for (int64_t u = 0; u < b; ++u) {
    const std::vector<int64_t>& rows = users[u];
    const int64_t len = std::min<int64_t>(max_len, static_cast<int64_t>(rows.size()));
    const int64_t pad = max_len - len;
    for (int64_t j = 0; j < len; ++j) {
      const int64_t row = rows[rows.size() - len + j];
      if (row < 0 || row >= info_.num_items) {
        return absl::InvalidArgumentError(absl::StrCat("item row ", row, " not in [0, ",
                                                       info_.num_items, ")"));
      }
      std::memcpy(seq.data() + (u * max_len + pad + j) * d, table + row * d, d * sizeof(float));
      valid[u * max_len + pad + j] = 1;
    }
  }
  std::vector<float> user(b * d);
  impl_->kernel->ForwardLast(seq.data(), valid.data(), b, user.data());
  out.reserve(b);
  for (int64_t u = 0; u < b; ++u) out.emplace_back(user.data() + u * d, user.data() + (u + 1) * d);
  return out;
}

}  // namespace recsys
