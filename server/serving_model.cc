#include "server/serving_model.h"

#include <cstring>
#include <utility>

#include <torch/torch.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "trainer/model/user_encoder.h"

namespace recsys {
namespace {

using json = nlohmann::json;

constexpr char kManifestFormat[] = "recsys.model_version.v1";
constexpr char kUserEncoderPrefix[] = "user_encoder.";

absl::Status Damaged(const std::string& dir, absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat("model version ", dir, " is damaged: ", what));
}

absl::StatusOr<json> ReadManifest(const std::string& dir) {
  ASSIGN_OR_RETURN(std::string text,
                   ReadFileToString(JoinPath(dir, "manifest.json")));
  json m = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded() || !m.is_object()) {
    return Damaged(dir, "manifest.json is not a JSON object");
  }
  if (m.value("format", "") != kManifestFormat) {
    return Damaged(dir, absl::StrCat("manifest format is not ", kManifestFormat));
  }
  return m;
}

// Every file listed in the manifest has its recorded size and CRC-32C.
absl::Status VerifyFiles(const std::string& dir, const json& manifest) {
  auto files = manifest.find("files");
  if (files == manifest.end() || !files->is_object()) {
    return Damaged(dir, "manifest lists no files");
  }
  for (auto it = files->begin(); it != files->end(); ++it) {
    const json& f = it.value();
    if (!f.is_object() || !f.contains("bytes") || !f.contains("crc32c") ||
        !f["bytes"].is_number_unsigned() || !f["crc32c"].is_number_unsigned()) {
      return Damaged(dir, absl::StrCat("bad manifest entry for ", it.key()));
    }
    ASSIGN_OR_RETURN(FileChecksum sum, Crc32cOfFile(JoinPath(dir, it.key())));
    if (sum.bytes != f["bytes"].get<uint64_t>()) {
      return Damaged(dir, absl::StrCat(it.key(), " has ", sum.bytes,
                                       " bytes, manifest says ",
                                       f["bytes"].get<uint64_t>()));
    }
    if (sum.crc32c != f["crc32c"].get<uint64_t>()) {
      return Damaged(dir, absl::StrCat(it.key(), " fails its CRC-32C check"));
    }
  }
  return absl::OkStatus();
}

int64_t ConfigInt(const json& config, const char* name, int64_t fallback) {
  auto it = config.find(name);
  return it != config.end() && it->is_number_integer() ? it->get<int64_t>()
                                                        : fallback;
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
  ServingModelInfo info;
  info.directory = dir;
  const std::string name = dir.substr(dir.find_last_of('/') + 1);
  if (!absl::SimpleAtoi(name, &info.version) || info.version <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model version directory ", dir, " is not named by a positive integer"));
  }
  ASSIGN_OR_RETURN(json manifest, ReadManifest(dir));
  RETURN_IF_ERROR(VerifyFiles(dir, manifest));
  info.model_kind = manifest.value("model", "");
  info.created_at = manifest.value("created_at", "");
  info.metrics_json = manifest.contains("metrics") ? manifest["metrics"].dump() : "{}";
  const json config = manifest.value("config", json::object());
  const json dims = manifest.value("dims", json::object());
  info.embedding_dim = ConfigInt(dims, "embedding", 0);
  info.max_len = ConfigInt(dims, "max_len", 0);
  if (info.embedding_dim <= 0 || info.max_len <= 0) {
    return Damaged(dir, "manifest dims.embedding / dims.max_len missing");
  }

  auto impl = std::make_unique<Impl>();
  // Item embeddings and their keys.
  ASSIGN_OR_RETURN(auto items, SafetensorsFile::Open(
                                   JoinPath(dir, "item_embeddings.safetensors")));
  ASSIGN_OR_RETURN(TensorView emb, items->Get("embeddings"));
  if (emb.dtype != DType::kF32 || emb.shape.size() != 2 ||
      emb.shape[1] != info.embedding_dim) {
    return Damaged(dir, absl::StrCat("embeddings must be F32 [n, ",
                                     info.embedding_dim, "]"));
  }
  const int64_t n = emb.shape[0];
  absl::StatusOr<std::vector<std::string>> keys = ReadKeyTensors(*items, n);
  if (!keys.ok()) return Damaged(dir, absl::StrCat("item keys: ", keys.status().message()));
  impl->row_of.reserve(keys->size());
  for (int64_t i = 0; i < n; ++i) impl->row_of.emplace(std::move((*keys)[i]), i);
  info.num_items = n;
  impl->embeddings = torch::empty({n, info.embedding_dim}, torch::kFloat32);
  std::memcpy(impl->embeddings.data_ptr<float>(), emb.data, emb.size_bytes);

  // The user encoder.
  UserEncoderOptions uo;
  uo.dim(info.embedding_dim)
      .max_len(info.max_len)
      .num_heads(ConfigInt(config, "num_heads", 2))
      .num_layers(ConfigInt(config, "num_layers", 2))
      .ffn_dim(ConfigInt(config, "ffn_dim", 256))
      .dropout(0.0);
  ASSIGN_OR_RETURN(auto weights, SafetensorsFile::Open(
                                     JoinPath(dir, "user_encoder.safetensors")));
  try {
    impl->encoder = UserEncoder(uo);
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
