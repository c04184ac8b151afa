#include "trainer/model/recommender.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace recsys {

absl::StatusOr<ModelKind> ParseModelKind(const std::string& name) {
  if (name == "iisan") return ModelKind::kIisan;
  if (name == "sasrec") return ModelKind::kSasrec;
  if (name == "popularity") return ModelKind::kPopularity;
  return absl::InvalidArgumentError(
      absl::StrCat("model \"", name, "\": expected iisan, sasrec or popularity"));
}

std::string ModelKindName(ModelKind kind) {
  switch (kind) {
    case ModelKind::kIisan:
      return "iisan";
    case ModelKind::kSasrec:
      return "sasrec";
    case ModelKind::kPopularity:
      return "popularity";
  }
  return "?";
}

RecommenderImpl::RecommenderImpl(const RecommenderOptions& o) : options_(o) {
  TORCH_CHECK(o.kind != ModelKind::kPopularity, "popularity has no module");
  if (o.kind == ModelKind::kIisan) {
    IisanItemEncoderOptions enc = o.item_encoder;
    enc.embedding_dim = o.user_encoder.dim();
    item_encoder_ = register_module("item_encoder", IisanItemEncoder(enc));
  } else {
    TORCH_CHECK(o.num_items > 0, "SASRec needs num_items > 0");
    item_embedding_ = register_module(
        "item_embedding", torch::nn::Embedding(o.num_items, o.user_encoder.dim()));
    torch::NoGradGuard no_grad;
    item_embedding_->weight.normal_(0.0, 0.1);
  }
  user_encoder_ = register_module("user_encoder", UserEncoder(o.user_encoder));
}

torch::Tensor RecommenderImpl::EmbedItems(const ItemInputs& in) {
  if (options_.kind == ModelKind::kIisan) return item_encoder_->forward(in.states);
  return item_embedding_->forward(in.ids);
}

torch::Tensor RecommenderImpl::EncodeUsers(const torch::Tensor& seq,
                                           const torch::Tensor& valid) {
  return user_encoder_->forward(seq, valid);
}

std::vector<torch::Tensor> RecommenderImpl::ItemTowerParameters() {
  return options_.kind == ModelKind::kIisan ? item_encoder_->parameters()
                                            : item_embedding_->parameters();
}

std::vector<torch::Tensor> RecommenderImpl::UserEncoderParameters() {
  return user_encoder_->parameters();
}

IisanItemEncoderOptions ItemEncoderOptionsFor(const ItemStateStore& store,
                                              int64_t bottleneck,
                                              int64_t embedding_dim,
                                              bool inter_path) {
  IisanItemEncoderOptions o;
  for (int m = 0; m < store.num_modalities(); ++m) {
    o.modalities.push_back({store.modality(m), store.num_blocks(m), store.hidden_size(m)});
  }
  o.bottleneck = bottleneck;
  o.embedding_dim = embedding_dim;
  o.inter_path = inter_path;
  return o;
}

absl::StatusOr<ItemInputs> GatherItemInputs(const ItemStateStore* store,
                                            const std::vector<int64_t>& ids,
                                            const torch::Device& device) {
  ItemInputs in;
  const int64_t n = static_cast<int64_t>(ids.size());
  try {
    in.ids = torch::from_blob(const_cast<int64_t*>(ids.data()), {n}, torch::kLong)
                 .to(device, /*non_blocking=*/false, /*copy=*/true);
    if (store != nullptr) {
      for (int m = 0; m < store->num_modalities(); ++m) {
        torch::Tensor host = torch::empty({n, store->num_blocks(m), store->hidden_size(m)},
                                          torch::kFloat);
        RETURN_IF_ERROR(store->Gather(m, ids, host.data_ptr<float>()));
        in.states.push_back(device.is_cpu() ? host : host.to(device));
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("gathering item inputs: ", e.what_without_backtrace()));
  }
  return in;
}

}  // namespace recsys
